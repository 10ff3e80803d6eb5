// Where a tool call's name and arguments are in reply text that is still growing, so that the
// arguments can be streamed as they are generated (OpenAI's delta.tool_calls[].function.arguments
// pieces) instead of once the call is complete. Used only where a grammar guarantees the call's shape
// (tern's constrained tool calls write the name first, then the arguments object), so bytes once
// inside the arguments value are final.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace tern {

struct CallScan {
  static constexpr size_t npos = std::string_view::npos;
  bool bad = false;          // not a name-first call object: stream nothing, wait for the whole call
  bool has_name = false;
  std::string name;
  size_t args_begin = npos;  // the arguments value's first byte ('{' or '[')
  size_t args_end = npos;    // one past its last byte, once it is complete
  size_t end = npos;         // one past the object's closing '}', once it is complete
};

// Scans `s`, which starts (after optional whitespace) with a call object
// {"name": "...", "arguments" | "parameters": {...}} (Mistral's v3 template adds "id": "..."), as far as it goes.
CallScan scan_call(std::string_view s);

// The length of the longest prefix of s that does not end inside a UTF-8 sequence (a piece sent now
// must be valid text on its own).
size_t utf8_complete_prefix(std::string_view s);

}  // namespace tern
