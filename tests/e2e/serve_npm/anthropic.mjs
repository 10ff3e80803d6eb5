// Anthropic's Messages API on `tern serve`, driven unchanged by the official `@anthropic-ai/sdk` client (pinned
// in package.json): whole and streamed messages, a forced tool call and a tool-result turn, stop sequences,
// count_tokens, and errors in Anthropic's shape. The server runs a random-weight Qwen3 with its real chat
// template (as tools.mjs): only constrained paths (a forced tool) can produce well-formed calls, and they must.
// usage: node anthropic.mjs BASE_URL API_KEY MODEL      prints "ALL OK" and exits 0 when every check passes.
import assert from 'node:assert/strict';
import Anthropic from '@anthropic-ai/sdk';
import { check, runChecks } from './checks.mjs';

const [base, apiKey, model] = process.argv.slice(2);
const client = new Anthropic({ baseURL: base, apiKey, maxRetries: 0, timeout: 120_000 });

const weatherTool = {
  name: 'get_weather', description: 'Weather of a city',
  input_schema: { type: 'object', properties: { city: { type: 'string', enum: ['Paris', 'Oslo', 'Lima'] } },
                  required: ['city'], additionalProperties: false },
};

check('messages.create: a text message with usage', async () => {
  const m = await client.messages.create({ model, max_tokens: 12, system: 'Be brief.',
                                           messages: [{ role: 'user', content: 'Hello' }] });
  assert.equal(m.type, 'message');
  assert.equal(m.role, 'assistant');
  assert.ok(m.id.startsWith('msg_'));
  assert.equal(m.model, model);
  assert.ok(['end_turn', 'max_tokens'].includes(m.stop_reason), JSON.stringify(m));
  assert.equal(m.content[0].type, 'text');
  assert.ok(m.usage.input_tokens + (m.usage.cache_read_input_tokens ?? 0) > 0);
  assert.ok(m.usage.output_tokens > 0 && m.usage.output_tokens <= 12);
});

check('messages.stream: events accumulate to the same message shape', async () => {
  const deltas = [];
  const stream = client.messages.stream({ model, max_tokens: 16, messages: [{ role: 'user', content: 'Count.' }] });
  stream.on('text', (t) => deltas.push(t));
  const m = await stream.finalMessage();
  assert.ok(m.id.startsWith('msg_'));
  const text = m.content.filter((b) => b.type === 'text').map((b) => b.text).join('');
  assert.equal(deltas.join(''), text);
  assert.ok(['end_turn', 'max_tokens'].includes(m.stop_reason));
  assert.ok(m.usage.output_tokens > 0);
});

check('forced tool_use, then a tool_result turn', async () => {
  for (const stream of [false, true]) {
    const body = { model, max_tokens: 200, tools: [weatherTool], tool_choice: { type: 'tool', name: 'get_weather' },
                   messages: [{ role: 'user', content: 'Weather in Paris?' }] };
    const m = stream ? await client.messages.stream(body).finalMessage() : await client.messages.create(body);
    assert.equal(m.stop_reason, 'tool_use', JSON.stringify(m));
    const uses = m.content.filter((b) => b.type === 'tool_use');
    assert.equal(uses.length, 1, JSON.stringify(m));
    assert.equal(uses[0].name, 'get_weather');
    assert.ok(['Paris', 'Oslo', 'Lima'].includes(uses[0].input.city), JSON.stringify(uses[0]));
    const next = await client.messages.create({
      model, max_tokens: 8, tools: [weatherTool], tool_choice: { type: 'none' },
      messages: [body.messages[0], { role: 'assistant', content: m.content },
                 { role: 'user', content: [{ type: 'tool_result', tool_use_id: uses[0].id, content: 'sunny, 21 C' }] }],
    });
    assert.ok(['end_turn', 'max_tokens'].includes(next.stop_reason));
    assert.equal(next.content.filter((b) => b.type === 'tool_use').length, 0);
  }
});

check('tool_choice any: one call of a listed tool', async () => {
  const m = await client.messages.create({ model, max_tokens: 200, tools: [weatherTool], tool_choice: { type: 'any',
    disable_parallel_tool_use: true }, messages: [{ role: 'user', content: 'Oslo?' }] });
  assert.equal(m.stop_reason, 'tool_use');
  assert.equal(m.content.filter((b) => b.type === 'tool_use').length, 1);
});

check('stop_sequences: stop_reason and stop_sequence name the one that matched', async () => {
  // Greedy decoding of the same prompt twice: the second run stops at a piece of the first's text.
  const free = await client.messages.create({ model, max_tokens: 24, temperature: 0,
                                              messages: [{ role: 'user', content: 'Say something.' }] });
  const text = free.content[0].text;
  const chars = [...text];  // code points: a stop string never splits a surrogate pair
  if (chars.length < 6) return console.log('     (stop_sequences: the reply was too short to stop in)');
  const stop = chars.slice(3, 6).join('');
  const m = await client.messages.create({ model, max_tokens: 24, temperature: 0, stop_sequences: ['\u0000never', stop],
                                           messages: [{ role: 'user', content: 'Say something.' }] });
  assert.equal(m.stop_reason, 'stop_sequence', JSON.stringify(m));
  assert.equal(m.stop_sequence, stop);
  assert.equal(m.content[0].text, text.slice(0, text.indexOf(stop)));
});

check('messages.countTokens', async () => {
  const a = await client.messages.countTokens({ model, messages: [{ role: 'user', content: 'Hello' }] });
  const b = await client.messages.countTokens({ model, messages: [{ role: 'user', content: 'Hello there, how are you?' }],
                                                tools: [weatherTool] });
  assert.ok(a.input_tokens > 0 && b.input_tokens > a.input_tokens, JSON.stringify([a, b]));
});

check('errors: Anthropic shapes and statuses', async () => {
  await assert.rejects(client.messages.create({ model, max_tokens: 8, messages: [{ role: 'user', content: 'x' }],
                                               mcp_servers: [{ type: 'url', url: 'http://x', name: 'x' }] }),
                       (e) => e instanceof Anthropic.BadRequestError && e.error?.type === 'error' &&
                              e.error.error.type === 'invalid_request_error' && /mcp_servers/.test(e.error.error.message));
  await assert.rejects(client.messages.create({ model, max_tokens: 8, messages: [{ role: 'user', content: [
                         { type: 'image', source: { type: 'base64', media_type: 'image/png', data: 'AA==' } }] }] }),
                       (e) => e instanceof Anthropic.BadRequestError && /image/.test(e.error.error.message));
  await assert.rejects(client.messages.create({ model: 'no-such-model', max_tokens: 8, messages: [{ role: 'user', content: 'x' }] }),
                       (e) => e instanceof Anthropic.NotFoundError && e.error.error.type === 'not_found_error');
  const bad = new Anthropic({ baseURL: base, apiKey: 'wrong', maxRetries: 0 });
  await assert.rejects(bad.messages.create({ model, max_tokens: 8, messages: [{ role: 'user', content: 'x' }] }),
                       (e) => e instanceof Anthropic.AuthenticationError && e.error.error.type === 'authentication_error');
});

await runChecks();
