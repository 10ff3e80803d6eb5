// The chat view: conversations (kept in localStorage) on the left, the selected one on the right with its
// system prompt and the sampling settings; answers stream in over SSE and the stop button aborts the
// request (the server cancels the sequence when the client goes away).
import { useEffect, useRef, useState } from 'preact/hooks';
import { AuthError, streamChat } from './api.js';
import { Message } from './message.jsx';
import {
  apiMessages,
  loadConversations,
  loadSettings,
  newConversation,
  samplingFields,
  saveConversations,
  saveSettings,
  titleOf,
} from './store.js';

// Folds one streamed delta into the answer being built.
function applyDelta(m, d) {
  if (d.content) m.content += d.content;
  if (d.reasoning_content) m.reasoning = (m.reasoning || '') + d.reasoning_content;
  for (const tc of d.tool_calls || []) {
    m.toolCalls = m.toolCalls || [];
    const i = tc.index ?? m.toolCalls.length;
    const c = (m.toolCalls[i] = m.toolCalls[i] || { id: '', name: '', arguments: '' });
    if (tc.id) c.id = tc.id;
    if (tc.function && tc.function.name) c.name += tc.function.name;
    if (tc.function && tc.function.arguments) c.arguments += tc.function.arguments;
  }
}

function Settings({ settings, setSettings, conv, setSystem, maxLen }) {
  const field = (name, label, attrs) => (
    <label class="setting">
      <span>{label}</span>
      <input
        type="number"
        data-testid={name}
        value={settings[name]}
        placeholder="default"
        onInput={(e) => setSettings({ ...settings, [name]: e.currentTarget.value })}
        {...attrs}
      />
    </label>
  );
  return (
    <div class="settings">
      <label class="setting system">
        <span>System prompt</span>
        <textarea
          data-testid="system-prompt"
          rows={2}
          placeholder="(none)"
          value={conv.system}
          onInput={(e) => setSystem(e.currentTarget.value)}
        />
      </label>
      <div class="setting-row">
        {field('temperature', 'temperature', { min: 0, max: 2, step: 0.1 })}
        {field('top_p', 'top_p', { min: 0, max: 1, step: 0.05 })}
        {field('max_tokens', 'max_tokens', { min: 1, max: maxLen || undefined, step: 1 })}
      </div>
    </div>
  );
}

export function ChatView({ model, onAuthError }) {
  const [convs, setConvs] = useState(() => {
    const list = loadConversations();
    return list.length ? list : [newConversation(loadSettings().system)];
  });
  const [currentId, setCurrentId] = useState(() => convs[0].id);
  const [settings, setSettingsState] = useState(loadSettings);
  const [input, setInput] = useState('');
  const [live, setLive] = useState(null); // {convId, m} while an answer streams
  const abortRef = useRef(null);
  const listRef = useRef(null);
  const conv = convs.find((c) => c.id === currentId) || convs[0];

  const setSettings = (s) => {
    setSettingsState(s);
    saveSettings(s);
  };
  const update = (id, fn) =>
    setConvs((list) => {
      const next = list.map((c) => (c.id === id ? { ...fn(c), updated: Date.now() } : c));
      saveConversations(next);
      return next;
    });

  useEffect(() => saveConversations(convs), []);
  useEffect(() => {
    const el = listRef.current;
    if (el) el.scrollTop = el.scrollHeight;
  }, [live, conv.messages.length, currentId]);

  async function send() {
    const text = input.trim();
    if (!text || live || !model) return;
    setInput('');
    const convId = conv.id;
    const user = { role: 'user', content: text };
    const history = { ...conv, messages: [...conv.messages, user] };
    update(convId, (c) => ({
      ...c,
      title: c.messages.length ? c.title : titleOf(text),
      messages: [...c.messages, user],
    }));
    const m = { role: 'assistant', content: '', stats: {} };
    const controller = new AbortController();
    abortRef.current = controller;
    setLive({ convId, m: { ...m } });
    const t0 = performance.now();
    let tFirst = null;
    let timer = null;
    const flush = () => {
      timer = null;
      setLive({ convId, m: { ...m, toolCalls: m.toolCalls && m.toolCalls.map((c) => ({ ...c })) } });
    };
    try {
      const finish = await streamChat({
        model: model.id,
        messages: apiMessages(history),
        sampling: samplingFields(settings),
        signal: controller.signal,
        onDelta: (d) => {
          if (tFirst == null && (d.content || d.reasoning_content || d.tool_calls)) tFirst = performance.now();
          applyDelta(m, d);
          // One render per ~30 ms however fast tokens arrive.
          if (!timer) timer = setTimeout(flush, 30);
        },
        onUsage: (u) => (m.stats.tokens = u.completion_tokens),
      });
      m.stats.finish = finish;
    } catch (e) {
      if (e.name === 'AbortError') m.stopped = true;
      else m.error = e.message;
      if (e instanceof AuthError) onAuthError(e.message);
    } finally {
      clearTimeout(timer);
      const t1 = performance.now();
      if (tFirst != null) {
        m.stats.ttftMs = tFirst - t0;
        if (m.stats.tokens > 1 && t1 > tFirst) m.stats.tokensPerS = (m.stats.tokens - 1) / ((t1 - tFirst) / 1000);
      }
      abortRef.current = null;
      update(convId, (c) => ({ ...c, messages: [...c.messages, { ...m }] }));
      setLive(null);
    }
  }

  const stop = () => abortRef.current && abortRef.current.abort();
  const create = () => {
    const c = newConversation(settings.system);
    setConvs((list) => [c, ...list]);
    setCurrentId(c.id);
  };
  const remove = (id) => {
    if (live && live.convId === id) stop();
    setConvs((list) => {
      let next = list.filter((c) => c.id !== id);
      if (!next.length) next = [newConversation(settings.system)];
      saveConversations(next);
      if (id === currentId) setCurrentId(next[0].id);
      return next;
    });
  };
  const setSystem = (system) => {
    update(conv.id, (c) => ({ ...c, system }));
    setSettings({ ...settings, system }); // the default for new chats
  };

  const sorted = [...convs].sort((a, b) => b.updated - a.updated);
  return (
    <div class="chat">
      <aside class="conversations">
        <button class="new-chat" data-testid="new-chat" onClick={create}>
          + New chat
        </button>
        <ul>
          {sorted.map((c) => (
            <li key={c.id} class={c.id === conv.id ? 'active' : ''} data-testid="conversation">
              <button class="conv-title" onClick={() => setCurrentId(c.id)} title={c.title}>
                {c.title}
              </button>
              <button class="conv-delete" title="Delete" onClick={() => remove(c.id)}>
                ×
              </button>
            </li>
          ))}
        </ul>
      </aside>
      <section class="conversation">
        <Settings settings={settings} setSettings={setSettings} conv={conv} setSystem={setSystem} maxLen={model && model.maxLen} />
        <div class="messages" ref={listRef} data-testid="messages">
          {conv.messages.length === 0 && !live ? (
            <div class="empty muted">Send a message to {model ? model.id : 'the model'}.</div>
          ) : null}
          {conv.messages.map((m, i) => (
            <Message m={m} key={i} />
          ))}
          {live && live.convId === conv.id ? <Message m={live.m} streaming /> : null}
        </div>
        <form
          class="composer"
          onSubmit={(e) => {
            e.preventDefault();
            send();
          }}
        >
          <textarea
            data-testid="chat-input"
            rows={3}
            value={input}
            placeholder="Message (Enter sends, Shift+Enter for a new line)"
            onInput={(e) => setInput(e.currentTarget.value)}
            onKeyDown={(e) => {
              if (e.key === 'Enter' && !e.shiftKey && !e.isComposing) {
                e.preventDefault();
                send();
              }
            }}
          />
          {live ? (
            <button type="button" class="stop" data-testid="stop" onClick={stop}>
              Stop
            </button>
          ) : (
            <button type="submit" class="send" data-testid="send" disabled={!model || !input.trim()}>
              Send
            </button>
          )}
        </form>
      </section>
    </div>
  );
}
