// Fixtures of webui_test.mjs. A stored conversation for the rendering checks: markdown, a code block, a table, a
// tool call, reasoning, and HTML that must not run (it would set window.__pwned).
export function seededConversation() {
  const answer = [
    'Here is **bold** text and a table:',
    '',
    '| op | shape |',
    '|----|-------|',
    '| matmul | [n, d] |',
    '',
    '```cpp',
    'int main() { return 0; }',
    '```',
    '',
    '<img src=x onerror="window.__pwned = 1"> <script>window.__pwned = 2</script>',
    '[a link](javascript:window.__pwned=3)',
  ].join('\n');
  return {
    id: 'seeded-rendering-check',
    title: 'Rendering check',
    system: '',
    updated: 1,
    messages: [
      { role: 'user', content: 'Show me markdown' },
      {
        role: 'assistant',
        content: answer,
        reasoning: 'Let me think about it.',
        toolCalls: [{ id: 'call_1', name: 'get_weather', arguments: '{"city":"Paris"}' }],
        stats: { tokens: 42, finish: 'stop' },
      },
    ],
  };
}

// A streamed answer with reasoning, text and one tool call whose arguments come in two fragments, as
// `tern serve` streams them for a Qwen3-style template (SSE body of /v1/chat/completions).
export function toolCallStream() {
  const chunk = (delta, finish = null) => ({ id: 'c1', object: 'chat.completion.chunk', choices: [{ index: 0, delta, finish_reason: finish }] });
  const events = [
    chunk({ role: 'assistant', reasoning_content: 'The user wants ' }),
    chunk({ reasoning_content: 'the weather.' }),
    chunk({ content: 'Let me check.' }),
    chunk({ tool_calls: [{ index: 0, id: 'call_7', type: 'function', function: { name: 'get_weather', arguments: '{"city":' } }] }),
    chunk({ tool_calls: [{ index: 0, function: { arguments: '"Oslo"}' } }] }),
    chunk({}, 'tool_calls'),
    { id: 'c1', object: 'chat.completion.chunk', choices: [], usage: { prompt_tokens: 9, completion_tokens: 12, total_tokens: 21 } },
  ];
  return events.map((e) => 'data: ' + JSON.stringify(e) + '\n\n').join('') + 'data: [DONE]\n\n';
}
