// Drives the web page of a running `tern serve` in headless Chromium (playwright-core, Debian's chromium):
//   node webui_test.mjs --url http://127.0.0.1:PORT --chromium /usr/bin/chromium [--key KEY] [--screenshots DIR]
// Without --key: the chat (stream, stop, markdown/code/tool calls/reasoning from a stored conversation,
// persistence across a reload) and the dashboard under load. With --key: the page asks for the key,
// refuses a wrong one, then chats and scrapes /metrics with the right one. Prints "ALL OK" at the end.
// Every wait is for a condition, with generous limits: CI runs this at load average 10 and more.
import path from 'node:path';
import { chromium } from 'playwright-core';
import { seededConversation, toolCallStream } from './seed.mjs';

const args = process.argv.slice(2);
const arg = (name) => (args.indexOf(name) >= 0 ? args[args.indexOf(name) + 1] : undefined);
const url = arg('--url');
const key = arg('--key');
const shots = arg('--screenshots');
const LIMIT = 240_000; // ms for any one condition

function check(cond, what) {
  if (!cond) throw new Error('FAILED: ' + what);
  console.log('ok: ' + what);
}

async function waitFor(what, fn, limit = LIMIT) {
  const until = Date.now() + limit;
  for (;;) {
    const v = await fn();
    if (v) {
      console.log('ok: ' + what);
      return v;
    }
    if (Date.now() > until) throw new Error('FAILED (timed out): ' + what);
    await new Promise((r) => setTimeout(r, 200));
  }
}

const auth = () => (key ? { Authorization: 'Bearer ' + key } : {});

async function metric(name) {
  const text = await (await fetch(url + '/metrics', { headers: auth() })).text();
  const m = new RegExp('^' + name + ' (\\S+)$', 'm').exec(text);
  return m ? Number(m[1]) : NaN;
}

// Keeps `concurrency` streaming chat requests in flight until stop() (the dashboard's load).
function startLoad(model, concurrency) {
  let running = true;
  let done = 0;
  const one = async () => {
    while (running) {
      const res = await fetch(url + '/v1/chat/completions', {
        method: 'POST',
        headers: { 'Content-Type': 'application/json', ...auth() },
        body: JSON.stringify({ model, stream: true, max_tokens: 48, messages: [{ role: 'user', content: 'Tell me about pages ' + done }] }),
      });
      if (!res.ok) throw new Error('load request: ' + res.status + ' ' + (await res.text()));
      await res.text();
      done++;
    }
  };
  const workers = Array.from({ length: concurrency }, one);
  return { stop: async () => { running = false; await Promise.all(workers); return done; } };
}

const testid = (page, id) => page.locator(`[data-testid="${id}"]`);
const numberIn = async (loc) => Number((await loc.textContent()).replace(/[^0-9.]/g, ''));
const lastAnswer = (page) => testid(page, 'message-assistant').last();

async function streamAndStop(page) {
  // docs-llama-28m may end its answer (EOS) before the click lands: then another message, up to 5 tries.
  const live = page.locator('[data-testid="message-assistant"].streaming');
  for (let attempt = 1; attempt <= 5; attempt++) {
    const before = await testid(page, 'message-assistant').count();
    await testid(page, 'chat-input').fill('Once upon a time ' + attempt);
    await testid(page, 'send').click();
    const ended = async () => (await live.count()) === 0 && (await testid(page, 'message-assistant').count()) > before;
    const liveText = async () => ((await live.count()) ? (await live.textContent()).trim() : '');
    const first = await waitFor('streamed text appears (or the answer ended)', async () => {
      if (await ended()) return 'ENDED';
      const t = await liveText();
      return t.length > 20 ? t : '';
    });
    if (first === 'ENDED') continue;
    // More text arrives while the answer is still open: it streams, it was not written at once.
    const grew = await waitFor('the streamed answer grows (or ended)', async () =>
      (await ended()) ? 'ENDED' : (await liveText()).length > first.length ? 'GREW' : '');
    if (grew === 'ENDED') continue;
    console.log('ok: streamed text appears and grows (' + first.length + ' chars, then more)');
    try {
      await testid(page, 'stop').click({ timeout: 60_000 });
    } catch (e) {
      if (await ended()) continue; // it finished first
      throw e;
    }
    await waitFor('the answer closes after Stop', async () => (await live.count()) === 0);
    if (!/stopped/.test(await lastAnswer(page).textContent())) continue; // it ended on its own just then
    check(true, 'the stopped answer is kept, marked stopped');
    check(await testid(page, 'send').isVisible(), 'the send button is back after stop');
    return;
  }
  throw new Error('FAILED: no answer was stopped in 5 tries (each ended on its own, or Stop did not mark it)');
}

async function chatChecks(page, model) {
  await testid(page, 'max_tokens').fill('1500');
  await streamAndStop(page);
  await waitFor('the server saw the client go away (tern_http_client_disconnects_total >= 1)',
    async () => (await metric('tern_http_client_disconnects_total')) >= 1);
  await waitFor('the stopped sequence left the engine (tern_requests_running == 0)',
    async () => (await metric('tern_requests_running')) === 0);

  // A whole answer, with a system prompt and sampling settings.
  await testid(page, 'new-chat').click();
  await testid(page, 'system-prompt').fill('You are a terse assistant.');
  await testid(page, 'temperature').fill('0.7');
  await testid(page, 'max_tokens').fill('40');
  await testid(page, 'chat-input').fill('What is a page table?');
  await testid(page, 'send').click();
  await waitFor('a complete answer with its numbers', async () =>
    (await page.locator('[data-testid="message-assistant"].streaming').count()) === 0 &&
    /tokens/.test((await lastAnswer(page).textContent()) || ''));
  if (shots) {
    // A second turn, longer, for the picture.
    await testid(page, 'max_tokens').fill('120');
    await testid(page, 'chat-input').fill('And how does the kernel use it?');
    await testid(page, 'send').click();
    await waitFor('a second complete answer', async () =>
      (await testid(page, 'message-assistant').count()) === 2 &&
      (await page.locator('[data-testid="message-assistant"].streaming').count()) === 0);
    await page.screenshot({ path: path.join(shots, 'webui-chat.png') });
  }

  // Streamed tool calls and reasoning, as a Qwen3-style server sends them (docs-llama-28m emits neither):
  // the answer is a canned SSE body, the page's parsing and folding of the deltas is what is tested.
  await page.route('**/v1/chat/completions', (route) =>
    route.fulfill({ status: 200, contentType: 'text/event-stream', body: toolCallStream() }));
  await testid(page, 'new-chat').click();
  await testid(page, 'chat-input').fill('Weather in Oslo?');
  await testid(page, 'send').click();
  await waitFor('a streamed tool call and reasoning are shown', async () =>
    (await page.locator('[data-testid="message-assistant"].streaming').count()) === 0 &&
    (await testid(page, 'tool-call').count()) === 1);
  const call = await testid(page, 'tool-call').textContent();
  check(call.includes('get_weather') && call.includes('call_7') && /"city": "Oslo"/.test(call),
    'the tool call is assembled from its fragments (name, id, arguments)');
  check((await testid(page, 'reasoning').textContent()).includes('The user wants the weather.'), 'streamed reasoning shows');
  check(/Let me check\./.test(await lastAnswer(page).textContent()) && /tool_calls/.test(await lastAnswer(page).textContent()),
    'the answer text and finish reason show');
  await page.unroute('**/v1/chat/completions');

  // Rendering and persistence: a stored conversation (markdown, code, a tool call, reasoning and a
  // hostile HTML snippet) shows after a reload; the snippet must not run.
  await page.evaluate((conv) => {
    const list = JSON.parse(localStorage.getItem('tern.conversations') || '[]');
    localStorage.setItem('tern.conversations', JSON.stringify([...list, conv]));
  }, seededConversation());
  await page.reload();
  const convs = await waitFor('conversations kept across a reload', async () => {
    const n = await testid(page, 'conversation').count();
    return n >= 4 ? n : 0;
  });
  check(convs >= 4, "four conversations listed after the reload");
  await page.locator('[data-testid="conversation"] button', { hasText: 'Rendering check' }).first().click();
  const answer = lastAnswer(page);
  await waitFor('code is highlighted', async () => (await answer.locator('pre code.hljs .hljs-keyword').count()) > 0);
  check((await answer.locator('table td').count()) >= 2, 'a markdown table renders');
  check((await answer.locator('strong').count()) >= 1, 'bold text renders');
  check((await testid(page, 'tool-call').textContent()).includes('get_weather'), 'a tool call shows its name');
  check((await testid(page, 'reasoning').textContent()).includes('think about it'), 'reasoning shows');
  check((await page.evaluate(() => window.__pwned)) === undefined, 'HTML in an answer does not run');
  check((await answer.locator('img[onerror], script').count()) === 0, 'no onerror handler or script survives sanitizing');
  if (shots) await page.screenshot({ path: path.join(shots, 'webui-chat-markdown.png') });
}

async function dashboardChecks(page, model) {
  await testid(page, 'tab-dashboard').click();
  await waitFor('the dashboard scraped /metrics twice', async () =>
    Number(await testid(page, 'dashboard').getAttribute('data-scrapes')) >= 2);
  const gen0 = await numberIn(testid(page, 'stat-gen-total'));
  const hist0 = Number(await testid(page, 'hist-ttft').getAttribute('data-total'));
  const plot0 = await testid(page, 'plot-tps').screenshot();
  const load = startLoad(model, 4);
  try {
    await waitFor('the dashboard shows requests running', async () => (await numberIn(testid(page, 'stat-running'))) > 0);
    await waitFor('the tokens-generated counter grows', async () => (await numberIn(testid(page, 'stat-gen-total'))) > gen0);
    await waitFor('the TTFT histogram counts more requests', async () =>
      Number(await testid(page, 'hist-ttft').getAttribute('data-total')) > hist0);
    await waitFor('the generation tok/s shows > 0', async () => (await numberIn(testid(page, 'stat-gen-tps'))) > 0);
    await waitFor('the throughput plot is redrawn', async () => !(await testid(page, 'plot-tps').screenshot()).equals(plot0));
    if (shots) {
      // A picture worth looking at: half a minute of load.
      const s0 = Number(await testid(page, 'dashboard').getAttribute('data-scrapes'));
      await waitFor('30 more scrapes', async () => Number(await testid(page, 'dashboard').getAttribute('data-scrapes')) >= s0 + 30);
    }
  } finally {
    const n = await load.stop();
    console.log(`load: ${n} requests answered`);
  }
  if (shots) await page.screenshot({ path: path.join(shots, 'webui-dashboard.png'), fullPage: true });
  check((await page.locator('.dashboard .error').count()) === 0, 'no metrics error on the dashboard');
}

async function keyChecks(page) {
  await testid(page, 'key-prompt').waitFor({ timeout: LIMIT });
  check(true, 'the page asks for the API key');
  await testid(page, 'key-input').fill('not-the-key');
  await testid(page, 'key-submit').click();
  await waitFor('a wrong key is refused', async () => /refused/.test(await testid(page, 'key-prompt').textContent()));
  await testid(page, 'key-input').fill(key);
  await testid(page, 'key-submit').click();
  await testid(page, 'chat-input').waitFor({ timeout: LIMIT });
  await testid(page, 'max_tokens').fill('16');
  await testid(page, 'chat-input').fill('Hello');
  await testid(page, 'send').click();
  await waitFor('an answer streams with the key', async () =>
    (await page.locator('[data-testid="message-assistant"].streaming').count()) === 0 &&
    /tokens/.test((await lastAnswer(page).textContent()) || ''));
  await testid(page, 'tab-dashboard').click();
  await waitFor('the dashboard reads /metrics with the key', async () =>
    Number(await testid(page, 'dashboard').getAttribute('data-scrapes')) >= 1);
  check((await page.locator('.dashboard .error').count()) === 0, 'no metrics error with the key');
  await page.reload();
  await testid(page, 'model-name').waitFor({ timeout: LIMIT });
  check((await testid(page, 'key-prompt').count()) === 0, 'the key is kept for the tab across a reload');
}

const browser = await chromium.launch({
  executablePath: arg('--chromium'),
  headless: true,
  args: ['--no-sandbox', '--disable-dev-shm-usage', '--disable-gpu'],
  timeout: LIMIT,
});
const problems = [];
try {
  const page = await browser.newPage({ viewport: { width: 1280, height: shots ? 900 : 800 } });
  page.setDefaultTimeout(LIMIT);
  page.on('pageerror', (e) => problems.push('page error: ' + e.message));
  page.on('console', (m) => {
    // Failed loads are judged by the response listener below. Chromium reports the blocked onerror= of the
    // stored hostile answer while DOMPurify parses it (DOMParser); the checks above prove it was stripped.
    const t = m.text();
    if (m.type() === 'error' && !/^Failed to load resource/.test(t) && !/Executing inline event handler/.test(t)) {
      problems.push('console error: ' + t);
    }
  });
  page.on('response', (r) => {
    // 401: the key being asked for; /x: the stored hostile answer's <img src=x>.
    const expected = (key && r.status() === 401) || new URL(r.url()).pathname === '/x';
    if (r.status() >= 400 && !expected) problems.push(`HTTP ${r.status()} for ${r.url()}`);
  });
  await page.goto(url + '/');
  if (key) {
    await keyChecks(page);
  } else {
    const models = await (await fetch(url + '/v1/models')).json();
    const model = models.data[0].id;
    await waitFor('the page shows the model name', async () => (await testid(page, 'model-name').textContent()) === model);
    await chatChecks(page, model);
    if (shots) await page.setViewportSize({ width: 1280, height: 1320 });
    await dashboardChecks(page, model);
  }
  check(problems.length === 0, 'no page errors, CSP violations or console errors' + (problems.length ? ':\n' + problems.join('\n') : ''));
} finally {
  await browser.close();
}
console.log('ALL OK');
