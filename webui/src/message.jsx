// One chat turn: the user's text, or the model's answer with its reasoning, tool calls and numbers.
import { Markdown } from './markdown.jsx';

function prettyArguments(args) {
  try {
    return JSON.stringify(JSON.parse(args), null, 2);
  } catch {
    return args; // still streaming, or not JSON: as sent
  }
}

function ToolCalls({ calls }) {
  return (
    <div class="tool-calls">
      {calls.map((c, i) => (
        <div class="tool-call" data-testid="tool-call" key={i}>
          <div class="tool-call-name">
            tool call <code>{c.name || '…'}</code>
            {c.id ? <span class="muted"> {c.id}</span> : null}
          </div>
          <pre>
            <code>{prettyArguments(c.arguments || '')}</code>
          </pre>
        </div>
      ))}
    </div>
  );
}

function Stats({ m }) {
  const s = m.stats || {};
  const parts = [];
  if (s.ttftMs != null) parts.push(`first token ${(s.ttftMs / 1000).toFixed(2)} s`);
  if (s.tokens != null) parts.push(`${s.tokens} tokens`);
  if (s.tokensPerS != null) parts.push(`${s.tokensPerS.toFixed(1)} tok/s`);
  if (s.finish) parts.push(s.finish);
  if (m.stopped) parts.push('stopped');
  return parts.length ? <div class="stats">{parts.join(' · ')}</div> : null;
}

export function Message({ m, streaming }) {
  if (m.role === 'user') {
    return (
      <div class="message user" data-testid="message-user">
        <div class="bubble">{m.content}</div>
      </div>
    );
  }
  const empty = !m.content && !m.reasoning && !(m.toolCalls && m.toolCalls.length);
  return (
    <div class={'message assistant' + (streaming ? ' streaming' : '')} data-testid="message-assistant">
      {m.reasoning ? (
        <details class="reasoning" open={streaming && !m.content} data-testid="reasoning">
          <summary>Reasoning</summary>
          <div class="reasoning-text">{m.reasoning}</div>
        </details>
      ) : null}
      {m.content ? <Markdown text={m.content} /> : null}
      {m.toolCalls && m.toolCalls.length ? <ToolCalls calls={m.toolCalls} /> : null}
      {empty && streaming ? <div class="muted">…</div> : null}
      {m.error ? (
        <div class="error" data-testid="message-error">
          {m.error}
        </div>
      ) : null}
      {streaming ? null : <Stats m={m} />}
    </div>
  );
}
