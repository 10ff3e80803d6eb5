// scan_call and utf8_complete_prefix: see call_scan.h.
#include "text/tool_calls/call_scan.h"

#include <nlohmann/json.hpp>

#include "text/tool_calls/chat_output_parser.h"

namespace tern {
namespace {

bool ws(char c) { return c == ' ' || c == '\n' || c == '\t' || c == '\r'; }

size_t skip(std::string_view s, size_t i) {
  while (i < s.size() && ws(s[i])) ++i;
  return i;
}

// One past the closing quote of the JSON string opening at s[i] == '"', or npos while incomplete.
size_t string_end(std::string_view s, size_t i) {
  for (size_t j = i + 1; j < s.size(); ++j) {
    if (s[j] == '\\') {
      ++j;
    } else if (s[j] == '"') {
      return j + 1;
    }
  }
  return std::string_view::npos;
}

}  // namespace

CallScan scan_call(std::string_view s) {
  CallScan c;
  size_t i = skip(s, 0);
  if (i == s.size()) return c;
  if (s[i] != '{') return c.bad = true, c;
  i = skip(s, i + 1);
  for (;;) {
    if (i == s.size()) return c;
    if (s[i] == '}') return c.end = i + 1, c;
    if (s[i] != '"') return c.bad = true, c;
    const size_t key_end = string_end(s, i);
    if (key_end == CallScan::npos) return c;
    const std::string_view key = s.substr(i + 1, key_end - i - 2);
    i = skip(s, key_end);
    if (i == s.size()) return c;
    if (s[i] != ':') return c.bad = true, c;
    i = skip(s, i + 1);
    if (i == s.size()) return c;
    if (key == "name") {
      if (s[i] != '"') return c.bad = true, c;
      const size_t e = string_end(s, i);
      if (e == CallScan::npos) return c;
      const auto v = nlohmann::json::parse(s.substr(i, e - i), nullptr, false);
      if (!v.is_string()) return c.bad = true, c;
      c.name = v.get<std::string>();
      c.has_name = true;
      i = e;
    } else if (key == "arguments" || key == "parameters") {
      if (!c.has_name || (s[i] != '{' && s[i] != '[')) return c.bad = true, c;  // not name-first
      c.args_begin = i;
      const size_t n = json_value_end(s.substr(i));
      if (n == CallScan::npos) return c;
      c.args_end = i + n;
      i = c.args_end;
    } else if (key == "id") {  // Mistral v3's template writes the call's id after its arguments
      if (s[i] != '"') return c.bad = true, c;
      const size_t e = string_end(s, i);
      if (e == CallScan::npos) return c;
      i = e;
    } else {
      return c.bad = true, c;  // a key tern's call grammars never write
    }
    i = skip(s, i);
    if (i == s.size()) return c;
    if (s[i] == ',') {
      i = skip(s, i + 1);
    } else if (s[i] != '}') {
      return c.bad = true, c;
    }
  }
}

size_t utf8_complete_prefix(std::string_view s) {
  // Step back over at most 3 continuation bytes to the last lead byte; keep it only if its sequence is whole.
  size_t k = s.size();
  int back = 0;
  while (k > 0 && back < 4 && (static_cast<unsigned char>(s[k - 1]) & 0xC0) == 0x80) --k, ++back;
  if (k == 0) return s.size();
  const unsigned char lead = static_cast<unsigned char>(s[k - 1]);
  const int need = lead >= 0xF0 ? 3 : lead >= 0xE0 ? 2 : lead >= 0xC0 ? 1 : 0;
  return need > back ? k - 1 : s.size();
}

}  // namespace tern
