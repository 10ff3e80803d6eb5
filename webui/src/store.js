// Conversations and settings, kept in the browser (localStorage): they survive a reload and never leave
// the machine except as the messages of a request.

const CONVERSATIONS = 'tern.conversations';
const SETTINGS = 'tern.settings';

function load(key, fallback) {
  try {
    const v = JSON.parse(localStorage.getItem(key));
    return v ?? fallback;
  } catch {
    return fallback;
  }
}

function save(key, value) {
  try {
    localStorage.setItem(key, JSON.stringify(value));
  } catch {
    // quota exceeded or storage off: the page keeps working, unsaved
  }
}

export function newConversation(system = '') {
  const id = Date.now().toString(36) + Math.random().toString(36).slice(2, 8);
  return { id, title: 'New chat', system, messages: [], updated: Date.now() };
}

// [{id, title, system, messages: [{role, content, reasoning, toolCalls, stopped, error, stats}], updated}]
export function loadConversations() {
  const list = load(CONVERSATIONS, []);
  return Array.isArray(list) ? list.filter((c) => c && c.id && Array.isArray(c.messages)) : [];
}

export function saveConversations(list) {
  save(CONVERSATIONS, list);
}

// Sampling settings; an empty field means the server's default.
export const defaultSettings = { temperature: '', top_p: '', max_tokens: '', system: '' };

export function loadSettings() {
  return { ...defaultSettings, ...load(SETTINGS, {}) };
}

export function saveSettings(s) {
  save(SETTINGS, s);
}

// The request fields of the settings: numbers only, empty ones left out.
export function samplingFields(s) {
  const out = {};
  for (const [k, parse] of [
    ['temperature', parseFloat],
    ['top_p', parseFloat],
    ['max_tokens', (v) => parseInt(v, 10)],
  ]) {
    const v = String(s[k] ?? '').trim();
    if (v !== '' && Number.isFinite(parse(v))) out[k] = parse(v);
  }
  return out;
}

// The API messages of a conversation: the system prompt, then each turn's role and text.
export function apiMessages(conv) {
  const out = [];
  if (conv.system && conv.system.trim()) out.push({ role: 'system', content: conv.system });
  for (const m of conv.messages) {
    if (m.role === 'assistant' && !m.content && !(m.toolCalls && m.toolCalls.length)) continue;
    out.push({ role: m.role, content: m.content || '' });
  }
  return out;
}

// A title from the first user message.
export function titleOf(text) {
  const t = text.replace(/\s+/g, ' ').trim();
  return t.length > 40 ? t.slice(0, 40) + '…' : t || 'New chat';
}
