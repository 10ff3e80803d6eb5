#include "text/tool_calls/tool_call_format.h"

#include <cstdint>

namespace tern {

const char* tool_call_format_name(ToolCallFormat f) {
  switch (f) {
    case ToolCallFormat::kHermes:
      return "hermes";
    case ToolCallFormat::kLlama3:
      return "llama3_json";
    case ToolCallFormat::kMistral:
      return "mistral";
    default:
      return "none";
  }
}

ChatFormat detect_chat_format(std::string_view src) {
  auto has = [&](std::string_view s) { return src.find(s) != std::string_view::npos; };
  ChatFormat f;
  // Order matters: a Mistral template never writes <tool_call>, a Hermes one never [TOOL_CALLS]; Llama's
  // markers are its header tokens plus the JSON instruction or the python tag.
  if (has("[TOOL_CALLS]")) {
    f.tool_calls = ToolCallFormat::kMistral;
    f.mistral_name_args = has("[ARGS]");
  } else if (has("<tool_call>")) {
    f.tool_calls = ToolCallFormat::kHermes;
  } else if (has("<|start_header_id|>") && (has("<|python_tag|>") || has("\"parameters\"") || has("<|eom_id|>"))) {
    f.tool_calls = ToolCallFormat::kLlama3;
  }
  f.template_renders_tools = has("tools");
  f.reasoning = has("<think>") || has("</think>");
  return f;
}

std::string make_tool_call_id(ToolCallFormat f, uint64_t seed, int index) {
  static constexpr char kAlnum[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
  // splitmix64 over (seed, index): distinct ids per call without shared state.
  uint64_t x = seed + 0x9E3779B97F4A7C15ull * uint64_t(index + 1);
  auto next = [&x] {
    uint64_t z = (x += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
  };
  const bool mistral = f == ToolCallFormat::kMistral;
  std::string id = mistral ? "" : "call_";
  const int n = mistral ? 9 : 24;
  for (int i = 0; i < n; ++i) id += kAlnum[next() % 62];
  return id;
}

}  // namespace tern
