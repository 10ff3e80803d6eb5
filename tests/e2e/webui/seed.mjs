// A stored conversation for the rendering checks of webui_test.mjs: markdown, a code block, a table, a
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
