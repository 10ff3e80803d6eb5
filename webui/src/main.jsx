// The page `tern serve` answers at /: a chat and a dashboard over the same server's API. When the server
// wants an API key (401), the page asks for it and keeps it for this tab only (sessionStorage).
import 'uplot/dist/uPlot.min.css';
import 'highlight.js/styles/github.css';
import './style.css';
import { render } from 'preact';
import { useEffect, useState } from 'preact/hooks';
import { apiKey, AuthError, listModels, setApiKey } from './api.js';
import { ChatView } from './chat.jsx';
import { DashboardView } from './dashboard.jsx';

function KeyPrompt({ message, onKey }) {
  const [key, setKey] = useState('');
  return (
    <form
      class="key-prompt"
      data-testid="key-prompt"
      onSubmit={(e) => {
        e.preventDefault();
        if (key.trim()) onKey(key.trim());
      }}
    >
      <h2>API key</h2>
      <p>
        This server was started with <code>--api-key</code>. Enter the key; it is kept in this tab only and sent
        as <code>Authorization: Bearer …</code>.
      </p>
      {message ? <p class="error">{message}</p> : null}
      <input type="password" data-testid="key-input" autofocus value={key} placeholder="key"
        onInput={(e) => setKey(e.currentTarget.value)} />
      <button type="submit" data-testid="key-submit">
        Continue
      </button>
    </form>
  );
}

const viewOf = () => (location.hash === '#dashboard' ? 'dashboard' : 'chat');

function App() {
  const [view, setView] = useState(viewOf);
  const [model, setModel] = useState(null);
  const [auth, setAuth] = useState(null); // null: fine; a string: the key is needed (the reason)
  const [error, setError] = useState('');
  const [ready, setReady] = useState(false); // the first call to the server answered

  const connect = async () => {
    try {
      const models = await listModels();
      setModel(models[0] || null);
      setAuth(null);
      setError('');
    } catch (e) {
      if (e instanceof AuthError) setAuth(apiKey() ? 'The key was refused.' : '');
      else setError('Cannot reach the server: ' + e.message);
    }
    setReady(true);
  };
  useEffect(() => {
    connect();
    const onHash = () => setView(viewOf());
    window.addEventListener('hashchange', onHash);
    return () => window.removeEventListener('hashchange', onHash);
  }, []);
  const onAuthError = () => {
    setAuth(apiKey() ? 'The key was refused.' : '');
    setApiKey('');
  };

  if (auth !== null) {
    return (
      <KeyPrompt
        message={auth}
        onKey={(k) => {
          setApiKey(k);
          connect();
        }}
      />
    );
  }
  return (
    <div class="app">
      <header>
        <span class="brand">tern</span>
        <span class="model muted" data-testid="model-name">{model ? model.id : error || 'connecting…'}</span>
        <nav>
          <a href="#chat" data-testid="tab-chat" class={view === 'chat' ? 'active' : ''}>Chat</a>
          <a href="#dashboard" data-testid="tab-dashboard" class={view === 'dashboard' ? 'active' : ''}>Dashboard</a>
        </nav>
      </header>
      <main>
        {ready ? null : <div class="muted">connecting…</div>}
        {ready ? (<>
        <div class="view" hidden={view !== 'chat'}>
          <ChatView model={model} onAuthError={onAuthError} />
        </div>
        <div class="view" hidden={view !== 'dashboard'}>
          <DashboardView onAuthError={onAuthError} visible={view === 'dashboard'} />
        </div>
        </>) : null}
      </main>
    </div>
  );
}

render(<App />, document.getElementById('app'));
