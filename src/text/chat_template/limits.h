// Bounds on parsing and rendering one chat template. Templates come with downloaded models (tokenizer_config.json,
// GGUF metadata) and render request data, so both are untrusted: without bounds a recursive macro or deep nesting
// overflows the stack, and `'x' * 10**9`, `range(10**9)` or nested loops run for ever while memory grows.
// Each bound hit is an error whose message starts with "template limit:" and names the bound; it is never a crash,
// a hang or a truncated prompt.
//
// The defaults leave every real template a wide margin: the Llama-3, Qwen3 (tools) and Llama-2 templates of the
// parity tests nest under 15 deep, call no macro recursively and loop once over the messages (and tools), so a
// conversation long enough to fill a million-token context renders within them. The stack needed by the deepest
// render the defaults allow stays under 1 MiB of stack (measured: 1,000 frames take 0.8 to 1 KiB each); the tests in
// tests/unit/test_chat_template_limits.cpp run the deepest cases on a 2 MiB thread stack.
#pragma once

#include <cstddef>
#include <cstdint>

namespace tern {

struct ChatTemplateLimits {
  int max_nesting = 200;                    // parse: blocks, brackets and operator chains inside each other
  int max_call_depth = 64;                  // render: macro calls (and caller()) inside each other
  int max_eval_depth = 1000;                // render: interpreter frames in all (nesting across macro calls)
  int max_value_depth = 200;                // lists / dicts inside each other, in the context or built
  size_t max_output_bytes = size_t(16) << 20;  // the rendered prompt
  size_t max_string_bytes = size_t(16) << 20;  // any one string built while rendering (~, +, *, join, ...)
  size_t max_built_bytes = size_t(256) << 20;  // strings and list items built or copied in all (bounds memory)
  int64_t max_list_items = 1'000'000;       // any one list built while rendering
  int64_t max_range = 100'000;              // range() length (what Jinja's own sandbox allows)
  int64_t max_loop_iterations = 1'000'000;  // for-loop iterations in all, nested loops multiplied
  int64_t max_steps = 100'000'000;          // evaluation steps: nodes evaluated, items and KiB handled by builtins
  double max_seconds = 10;                  // wall clock per render, a backstop behind the counts (0: none)
};

}  // namespace tern
