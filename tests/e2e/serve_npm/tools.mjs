// Structured output and tool calling against `tern serve`, driven by the official OpenAI node client's
// helpers and by the Vercel AI SDK (both pinned in package.json), unchanged. The server runs a random-weight
// model with a real chat template (Qwen3's): only the constrained paths (response_format json_schema,
// tool_choice "required" or a named function) can produce well-formed output from such weights, and they
// must, every time.
// usage: node tools.mjs BASE_URL API_KEY MODEL      prints "ALL OK" and exits 0 when every check passes.
import assert from 'node:assert/strict';
import OpenAI from 'openai';
import { zodFunction, zodResponseFormat } from 'openai/helpers/zod';
import { z } from 'zod';
import { generateText, streamText, tool } from 'ai';
import { createOpenAI } from '@ai-sdk/openai';
import { check, runChecks } from './checks.mjs';

const [base, apiKey, model] = process.argv.slice(2);
const client = new OpenAI({ baseURL: `${base}/v1`, apiKey, maxRetries: 0, timeout: 120_000 });

// Small closed schemas: random weights then finish each value quickly.
const Weather = z.object({ city: z.enum(['Paris', 'Oslo', 'Lima']) });
const Add = z.object({ a: z.number().int().min(0).max(9), b: z.number().int().min(0).max(9) });
const Plan = z.object({ city: z.enum(['Paris', 'Oslo']), sunny: z.boolean(), days: z.array(z.enum(['mon', 'tue'])).max(2) });
const weather = ({ city }) => ({ city, forecast: 'sunny', celsius: 21 });
const add = ({ a, b }) => ({ sum: a + b });

check('beta.chat.completions.parse with zodResponseFormat', async () => {
  for (let i = 0; i < 3; ++i) {
    const r = await client.beta.chat.completions.parse({
      model, messages: [{ role: 'user', content: 'Plan a trip.' }], max_tokens: 200, temperature: 1, seed: i,
      response_format: zodResponseFormat(Plan, 'plan'),
    });
    const msg = r.choices[0].message;
    assert.ok(msg.parsed, JSON.stringify(r));
    Plan.parse(msg.parsed);  // validates
    // Properties come in the schema's order (as OpenAI's strict mode writes them), not sorted.
    assert.deepEqual(Object.keys(JSON.parse(msg.content)), ['city', 'sunny', 'days'], msg.content);
    assert.equal(r.choices[0].finish_reason, 'stop');
  }
});

check('json_object', async () => {
  // Any JSON object: random weights may write a string until max_tokens ("length"); a reply that ends on
  // its own ("stop") is a complete object.
  for (let i = 0; i < 3; ++i) {
    const r = await client.chat.completions.create({ model, messages: [{ role: 'user', content: 'JSON please' }],
                                                    max_tokens: 300, seed: i, response_format: { type: 'json_object' } });
    const c = r.choices[0];
    assert.ok(['stop', 'length'].includes(c.finish_reason));
    if (c.finish_reason === 'stop') assert.equal(typeof JSON.parse(c.message.content), 'object');
    else assert.ok(c.message.content.startsWith('{'), c.message.content);
  }
});

check('a schema keyword tern does not support is a 400 naming it', async () => {
  await assert.rejects(
    client.chat.completions.create({ model, messages: [{ role: 'user', content: 'x' }], response_format: {
      type: 'json_schema', json_schema: { name: 'x', strict: true, schema: { type: 'object', patternProperties: { a: {} } } } } }),
    (e) => e instanceof OpenAI.BadRequestError && e.param === 'response_format.json_schema.schema' &&
           /patternProperties/.test(e.message));
});

check('multi-turn tool loop with chat.completions.create', async () => {
  const tools = [zodFunction({ name: 'get_weather', parameters: Weather }), zodFunction({ name: 'add', parameters: Add })];
  const messages = [{ role: 'user', content: 'Weather in Paris, and 2+3?' }];
  for (const name of ['get_weather', 'add']) {
    const r = await client.chat.completions.create({ model, messages, tools, max_tokens: 200,
                                                    tool_choice: { type: 'function', function: { name } } });
    const c = r.choices[0];
    assert.equal(c.finish_reason, 'tool_calls', JSON.stringify(r));
    assert.equal(c.message.tool_calls.length, 1);
    const call = c.message.tool_calls[0];
    assert.equal(call.type, 'function');
    assert.equal(call.function.name, name);
    const args = JSON.parse(call.function.arguments);
    const out = name === 'add' ? add(Add.parse(args)) : weather(Weather.parse(args));
    messages.push(c.message, { role: 'tool', tool_call_id: call.id, content: JSON.stringify(out) });
  }
  const r = await client.chat.completions.create({ model, messages, tools, tool_choice: 'none', max_tokens: 8 });
  assert.equal(typeof r.choices[0].message.content, 'string');
  assert.equal(r.choices[0].message.tool_calls, undefined);
  // tool_choice "required": one or more calls, each valid.
  const req = await client.chat.completions.create({ model, messages: messages.slice(0, 1), tools, max_tokens: 300,
                                                    tool_choice: 'required', parallel_tool_calls: false });
  assert.equal(req.choices[0].finish_reason, 'tool_calls', JSON.stringify(req));
  assert.equal(req.choices[0].message.tool_calls.length, 1);
  const rc = req.choices[0].message.tool_calls[0];
  (rc.function.name === 'add' ? Add : Weather).parse(JSON.parse(rc.function.arguments));
});

check('auto: a call, once begun, follows its schema', async () => {
  // Random weights never start a call on their own: logit_bias forces Qwen's "<tool_call>" token (151657),
  // after which the grammar of tool_choice "auto" admits only a well-formed call of a listed tool.
  const tools = [zodFunction({ name: 'get_weather', parameters: Weather }), zodFunction({ name: 'add', parameters: Add })];
  for (const stream of [false, true]) {
    const body = { model, messages: [{ role: 'user', content: 'Weather in Paris?' }], tools, max_tokens: 300,
                   parallel_tool_calls: false, logit_bias: { 151657: 100 } };
    const r = stream ? await client.beta.chat.completions.stream(body).finalChatCompletion()
                     : await client.chat.completions.create(body);
    const c = r.choices[0];
    assert.equal(c.finish_reason, 'tool_calls', JSON.stringify(r));
    assert.equal(c.message.tool_calls.length, 1);
    const call = c.message.tool_calls[0];
    (call.function.name === 'add' ? Add : Weather).parse(JSON.parse(call.function.arguments));
  }
});

check('beta.chat.completions.runTools with zodFunction', async () => {
  const seen = [];
  const runner = client.beta.chat.completions.runTools({
    model, max_tokens: 200, messages: [{ role: 'user', content: 'Weather in Oslo?' }],
    tool_choice: { type: 'function', function: { name: 'get_weather' } },
    tools: [zodFunction({ name: 'get_weather', parameters: Weather, function: (a) => (seen.push(a), weather(a)) })],
  });
  await runner.done();
  assert.equal(seen.length, 1);
  Weather.parse(seen[0]);
});

check('streamed tool calls with beta.chat.completions.stream', async () => {
  const stream = client.beta.chat.completions.stream({
    model, max_tokens: 200, messages: [{ role: 'user', content: 'add 1 and 2' }],
    tools: [zodFunction({ name: 'add', parameters: Add })], tool_choice: { type: 'function', function: { name: 'add' } },
    stream_options: { include_usage: true },
  });
  const done = await stream.finalChatCompletion();
  const c = done.choices[0];
  assert.equal(c.finish_reason, 'tool_calls');
  assert.equal(c.message.tool_calls.length, 1);
  Add.parse(JSON.parse(c.message.tool_calls[0].function.arguments));
  assert.ok(done.usage && done.usage.completion_tokens > 0);
});

// The Vercel AI SDK agent loop: step 1 calls get_weather, step 2 add, step 3 answers in text.
const provider = createOpenAI({ baseURL: `${base}/v1`, apiKey, compatibility: 'compatible' });
const aiTools = (log) => ({
  get_weather: tool({ description: 'Weather of a city', parameters: Weather,
                      execute: async (a) => (log.push(['get_weather', a]), weather(a)) }),
  add: tool({ description: 'Adds two digits', parameters: Add, execute: async (a) => (log.push(['add', a]), add(a)) }),
});
const prepareStep = async ({ stepNumber }) => ({
  toolChoice: stepNumber === 0 ? { type: 'tool', toolName: 'get_weather' }
              : stepNumber === 1 ? { type: 'tool', toolName: 'add' } : 'none',
});

check('ai generateText two-tool agent loop', async () => {
  const log = [];
  const r = await generateText({ model: provider.chat(model), tools: aiTools(log), maxSteps: 3, maxTokens: 200,
                                 maxRetries: 0, experimental_prepareStep: prepareStep,
                                 prompt: 'What is the weather in Paris, and what is 2 + 3?' });
  assert.deepEqual(log.map((x) => x[0]), ['get_weather', 'add'], JSON.stringify(r.steps.map((s) => s.finishReason)));
  assert.equal(r.steps.length, 3);
  assert.equal(r.steps[0].finishReason, 'tool-calls');
  assert.equal(r.steps[0].toolResults.length, 1);
  assert.equal(typeof r.text, 'string');
});

check('ai streamText streamed tool call', async () => {
  // streamText (4.3) has no prepareStep: one step with a named tool, its call streamed and executed.
  const log = [];
  const r = streamText({ model: provider.chat(model), tools: aiTools(log), maxSteps: 1, maxTokens: 200, maxRetries: 0,
                         toolChoice: { type: 'tool', toolName: 'add' }, prompt: '4 + 4?' });
  const calls = [];
  for await (const part of r.fullStream) {
    if (part.type === 'error') throw part.error;
    if (part.type === 'tool-call') calls.push(part);
  }
  assert.equal(calls.length, 1);
  assert.equal(calls[0].toolName, 'add');
  assert.deepEqual(log.map((x) => x[0]), ['add']);
  assert.equal(await r.finishReason, 'tool-calls');
});

await runChecks();
