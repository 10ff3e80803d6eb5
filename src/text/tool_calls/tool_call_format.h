// How a model writes tool calls and reasoning, read from its chat template (the template that renders
// `tools` and assistant `tool_calls` shows the format the model was trained to emit):
//   kHermes   <tool_call>\n{"name": ..., "arguments": {...}}\n</tool_call>   (Hermes, Qwen2.5, Qwen3)
//   kLlama3   {"name": ..., "parameters": {...}} as the whole reply, optionally after <|python_tag|>,
//             several separated by ';'                                          (Llama 3.1 / 3.2 / 3.3)
//   kMistral  [TOOL_CALLS][{"name": ..., "arguments": {...}}, ...]  or, from the v11 tokenizers on,
//             [TOOL_CALLS]name[ARGS]{...}                                       (Mistral, Mixtral)
// A template that renders none of them has kNone: tool calls then need tool_choice "required" or a
// named function (the API generates the arguments under the schema, whatever the template).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace tern {

enum class ToolCallFormat { kNone, kHermes, kLlama3, kMistral };

const char* tool_call_format_name(ToolCallFormat f);  // "none", "hermes", "llama3_json", "mistral"

struct ChatFormat {
  ToolCallFormat tool_calls = ToolCallFormat::kNone;
  bool template_renders_tools = false;  // the template reads `tools` (else tools go in a system message)
  bool reasoning = false;               // <think>...</think> replies (Qwen3, DeepSeek-R1, QwQ)
  bool mistral_name_args = false;       // kMistral from v11 on: [TOOL_CALLS]name[ARGS]{...} (the template shows [ARGS])
};

// The format a chat template's source implies.
ChatFormat detect_chat_format(std::string_view template_source);

// Tool call ids: Mistral's templates require 9 alphanumeric characters; the others take OpenAI's
// "call_" + 24. `seed` and `index` make them unique within a response.
std::string make_tool_call_id(ToolCallFormat f, uint64_t seed, int index);

}  // namespace tern
