// The server's API as the page uses it: the key (sessionStorage: gone when the tab closes), JSON calls,
// the SSE stream of /v1/chat/completions and /metrics. Every call is same-origin: the page is served by
// the `tern serve` it talks to.

const KEY = 'tern.apiKey';

export function apiKey() {
  return sessionStorage.getItem(KEY) || '';
}

export function setApiKey(key) {
  if (key) sessionStorage.setItem(KEY, key);
  else sessionStorage.removeItem(KEY);
}

// A 401 from the server: the page asks for the key.
export class AuthError extends Error {}

function headers(extra = {}) {
  const h = { ...extra };
  const key = apiKey();
  if (key) h.Authorization = 'Bearer ' + key;
  return h;
}

// The server's error body ({"error": {"message": ...}}) as a message.
async function errorMessage(res) {
  const text = await res.text();
  try {
    const body = JSON.parse(text);
    if (body && body.error && body.error.message) return `${res.status}: ${body.error.message}`;
  } catch {
    // not JSON: the text itself
  }
  return `${res.status}: ${text || res.statusText}`;
}

async function checked(res) {
  if (res.status === 401) throw new AuthError(await errorMessage(res));
  if (!res.ok) throw new Error(await errorMessage(res));
  return res;
}

export async function listModels() {
  const res = await checked(await fetch('/v1/models', { headers: headers() }));
  const body = await res.json();
  return body.data.map((m) => ({ id: m.id, maxLen: m.max_model_len }));
}

export async function fetchMetrics(signal) {
  const res = await checked(await fetch('/metrics', { headers: headers(), signal, cache: 'no-store' }));
  return res.text();
}

// Splits an SSE byte stream into the data of its events ("data: ..." lines of one event joined by "\n").
export async function* sseData(body) {
  const reader = body.getReader();
  const decoder = new TextDecoder();
  let buf = '';
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buf += decoder.decode(value, { stream: true }).replace(/\r\n?/g, '\n');
    let at;
    while ((at = buf.indexOf('\n\n')) >= 0) {
      const event = buf.slice(0, at);
      buf = buf.slice(at + 2);
      const data = event
        .split('\n')
        .filter((l) => l.startsWith('data:'))
        .map((l) => l.slice(5).replace(/^ /, ''));
      if (data.length) yield data.join('\n');
    }
  }
}

// Streams one chat completion. onDelta gets each choice delta ({content, reasoning_content, tool_calls})
// and onUsage the final usage. Resolves with the finish reason; an abort (the stop button) rejects with
// an AbortError, which the caller keeps as "stopped".
export async function streamChat({ model, messages, sampling, signal, onDelta, onUsage }) {
  const body = { model, messages, stream: true, stream_options: { include_usage: true }, ...sampling };
  const res = await checked(
    await fetch('/v1/chat/completions', {
      method: 'POST',
      headers: headers({ 'Content-Type': 'application/json' }),
      body: JSON.stringify(body),
      signal,
    }),
  );
  let finish = null;
  for await (const data of sseData(res.body)) {
    if (data === '[DONE]') break;
    const chunk = JSON.parse(data);
    if (chunk.error) throw new Error(chunk.error.message || JSON.stringify(chunk.error));
    if (chunk.usage && onUsage) onUsage(chunk.usage);
    for (const choice of chunk.choices || []) {
      if (choice.delta) onDelta(choice.delta);
      if (choice.finish_reason) finish = choice.finish_reason;
    }
  }
  return finish;
}
