// Drives `tern serve` with the official OpenAI node client (pinned in package.json), every endpoint and
// mode: models, completions and chat, streaming or not, usage in streams, logprobs, n, stop, seed, echo,
// and the errors the client maps to its exception classes. Raw fetch covers the non-OpenAI routes.
// usage: node client.mjs BASE_URL API_KEY MODEL      prints "ALL OK" and exits 0 when every check passes.
import assert from 'node:assert/strict';
import OpenAI from 'openai';
import { check, runChecks } from './checks.mjs';

const [base, apiKey, model] = process.argv.slice(2);
const client = new OpenAI({ baseURL: `${base}/v1`, apiKey, maxRetries: 0, timeout: 60_000 });

check('models.list', async () => {
  const page = await client.models.list();
  assert.ok(page.data.some((m) => m.id === model), JSON.stringify(page.data));
  const one = await client.models.retrieve(model);
  assert.equal(one.id, model);
});

check('completions non-streaming', async () => {
  const r = await client.completions.create({ model, prompt: 'The quick brown fox', max_tokens: 8, temperature: 0 });
  assert.equal(r.object, 'text_completion');
  assert.equal(r.choices.length, 1);
  assert.equal(typeof r.choices[0].text, 'string');
  assert.ok(['length', 'stop'].includes(r.choices[0].finish_reason));
  assert.ok(r.usage.prompt_tokens > 0 && r.usage.completion_tokens > 0);
  assert.equal(r.usage.total_tokens, r.usage.prompt_tokens + r.usage.completion_tokens);
});

check('completions greedy is deterministic', async () => {
  const a = await client.completions.create({ model, prompt: 'Hello there', max_tokens: 6, temperature: 0 });
  const b = await client.completions.create({ model, prompt: 'Hello there', max_tokens: 6, temperature: 0 });
  assert.equal(a.choices[0].text, b.choices[0].text);
});

check('completions streaming', async () => {
  const stream = await client.completions.create({ model, prompt: 'Once upon a time', max_tokens: 10, stream: true,
                                                   stream_options: { include_usage: true } });
  let text = '', finish = null, usage = null;
  for await (const chunk of stream) {
    if (chunk.usage) usage = chunk.usage;
    for (const c of chunk.choices) {
      text += c.text;
      if (c.finish_reason) finish = c.finish_reason;
    }
  }
  assert.ok(finish, 'no finish_reason');
  assert.ok(usage && usage.completion_tokens > 0, 'no usage chunk');
  const whole = await client.completions.create({ model, prompt: 'Once upon a time', max_tokens: 10, temperature: 0 });
  assert.equal(typeof whole.choices[0].text, 'string');
  assert.equal(typeof text, 'string');
});

check('completions n=2, logprobs, echo, stop, seed, token-id prompt', async () => {
  const r = await client.completions.create({ model, prompt: 'A B C', max_tokens: 5, n: 2, logprobs: 2, seed: 7,
                                              temperature: 0.8, top_p: 0.9, top_k: 20, min_p: 0.01,
                                              stop: ['\n\n'], presence_penalty: 0.1, frequency_penalty: 0.1,
                                              user: 'e2e' });
  assert.equal(r.choices.length, 2);
  for (const c of r.choices) {
    assert.equal(c.logprobs.tokens.length, c.logprobs.token_logprobs.length);
    assert.ok(c.logprobs.tokens.length > 0);
  }
  const e = await client.completions.create({ model, prompt: 'A B C', max_tokens: 3, echo: true });
  assert.ok(e.choices[0].text.startsWith('A B C'), 'echo');
  // echo + logprobs would ask for the prompt's logprobs, which tern does not compute: refused, not faked.
  await assert.rejects(client.completions.create({ model, prompt: 'A B C', max_tokens: 3, echo: true, logprobs: 1 }),
                       (err) => err instanceof OpenAI.BadRequestError && err.param === 'echo');
  await assert.rejects(client.chat.completions.create({ model, messages: [{ role: 'user', content: 'hi' }],
                                                        response_format: { type: 'yaml' } }),
                       (err) => err instanceof OpenAI.BadRequestError && err.param === 'response_format.type');
  const ids = await client.completions.create({ model, prompt: [1, 2, 3, 4], max_tokens: 3 });
  assert.equal(ids.usage.prompt_tokens, 4);
});

check('chat non-streaming', async () => {
  const r = await client.chat.completions.create({ model, messages: [{ role: 'system', content: 'Be brief.' },
                                                                     { role: 'user', content: 'Say hi' }],
                                                   max_tokens: 8, temperature: 0 });
  assert.equal(r.object, 'chat.completion');
  assert.equal(r.choices[0].message.role, 'assistant');
  assert.equal(typeof r.choices[0].message.content, 'string');
  assert.ok(r.usage.prompt_tokens > 0);
});

check('chat streaming with usage, logprobs, n=2, max_completion_tokens', async () => {
  const stream = await client.chat.completions.create({ model, messages: [{ role: 'user', content: 'Count to five' }],
                                                        max_completion_tokens: 6, stream: true, n: 2,
                                                        logprobs: true, top_logprobs: 2,
                                                        stream_options: { include_usage: true } });
  const roles = new Set(), finishes = {}, text = ['', ''];
  let usage = null, logprob_tokens = 0;
  for await (const chunk of stream) {
    assert.equal(chunk.object, 'chat.completion.chunk');
    if (chunk.usage) usage = chunk.usage;
    for (const c of chunk.choices) {
      if (c.delta.role) roles.add(c.index);
      if (c.delta.content) text[c.index] += c.delta.content;
      if (c.logprobs?.content) logprob_tokens += c.logprobs.content.length;
      if (c.finish_reason) finishes[c.index] = c.finish_reason;
    }
  }
  assert.deepEqual([...roles].sort(), [0, 1]);
  assert.ok(finishes[0] && finishes[1], JSON.stringify(finishes));
  assert.ok(usage && usage.completion_tokens > 0);
  assert.ok(logprob_tokens > 0);
});

check('chat stream stopped early by the client', async () => {
  const stream = await client.chat.completions.create({ model, messages: [{ role: 'user', content: 'Go on forever' }],
                                                        max_tokens: 500, stream: true });
  let n = 0;
  for await (const chunk of stream) {
    if (++n >= 3) break;  // the client aborts the request here
  }
  assert.ok(n >= 1);
});

check('errors map to the client exception classes', async () => {
  await assert.rejects(client.completions.create({ model: 'no-such-model', prompt: 'x' }),
                       (e) => e instanceof OpenAI.NotFoundError && e.status === 404);
  await assert.rejects(client.chat.completions.create({ model, messages: [] }),
                       (e) => e instanceof OpenAI.BadRequestError && e.status === 400 && e.param === 'messages');
  await assert.rejects(client.completions.create({ model, prompt: 'x', max_tokens: -1 }),
                       (e) => e instanceof OpenAI.BadRequestError && e.param === 'max_tokens');
  const bad = new OpenAI({ baseURL: `${base}/v1`, apiKey: 'wrong-key', maxRetries: 0 });
  await assert.rejects(bad.models.list(), (e) => e instanceof OpenAI.AuthenticationError && e.status === 401);
});

check('health, metrics, tokenize, detokenize', async () => {
  const auth = { Authorization: `Bearer ${apiKey}`, 'Content-Type': 'application/json' };
  const h = await fetch(`${base}/health`);
  assert.equal(h.status, 200);
  assert.equal((await fetch(`${base}/metrics`)).status, 401);  // with --api-key, /metrics needs it too
  const m = await (await fetch(`${base}/metrics`, { headers: auth })).text();
  assert.match(m, /^tern_kv_blocks_used \d+/m);
  assert.match(m, /tern_time_to_first_token_seconds_bucket\{le="\+Inf"\} \d+/);
  const t = await (await fetch(`${base}/tokenize`, { method: 'POST', headers: auth,
                                                     body: JSON.stringify({ prompt: 'Hello world' }) })).json();
  assert.ok(t.tokens.length > 0 && t.count === t.tokens.length);
  const d = await (await fetch(`${base}/detokenize`, { method: 'POST', headers: auth,
                                                       body: JSON.stringify({ tokens: t.tokens }) })).json();
  assert.ok(d.prompt.endsWith('Hello world'), d.prompt);
});

await runChecks();
