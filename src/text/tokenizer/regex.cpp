#include "text/tokenizer/regex.h"

namespace tern::tok {
namespace {

// PCRE2's \s also matches U+180E (whitespace before Unicode 6.3); Hugging Face's regex engine and the Unicode
// White_Space property do not. Rewrite \s / \S to the property, outside \Q...\E quoting.
std::string normalize_whitespace_class(const std::string& pattern) {
  std::string out;
  out.reserve(pattern.size() + 16);
  for (size_t i = 0; i < pattern.size(); ++i) {
    if (pattern[i] != '\\' || i + 1 >= pattern.size()) {
      out += pattern[i];
      continue;
    }
    const char c = pattern[i + 1];
    if (c == 's') {
      out += "\\p{White_Space}";
    } else if (c == 'S') {
      out += "\\P{White_Space}";
    } else if (c == 'Q') {  // copy the quoted literal unchanged
      const size_t end = pattern.find("\\E", i + 2);
      const size_t stop = end == std::string::npos ? pattern.size() : end + 2;
      out.append(pattern, i, stop - i);
      i = stop - 1;
      continue;
    } else {
      out += '\\';
      out += c;
    }
    ++i;
  }
  return out;
}

}  // namespace

Result<std::shared_ptr<const CompiledRegex>> CompiledRegex::compile(const std::string& pattern, bool literal) {
  const std::string source = literal ? pattern : normalize_whitespace_class(pattern);
  int err = 0;
  PCRE2_SIZE err_off = 0;
  // PCRE2_LITERAL rejects PCRE2_UCP (character classes do not apply to a literal).
  const uint32_t opts = PCRE2_UTF | (literal ? PCRE2_LITERAL : PCRE2_UCP);
  pcre2_code* code =
      pcre2_compile(reinterpret_cast<PCRE2_SPTR>(source.data()), source.size(), opts, &err, &err_off, nullptr);
  if (!code) {
    PCRE2_UCHAR msg[256];
    pcre2_get_error_message(err, msg, sizeof(msg));
    return Status::error("cannot compile pattern '" + pattern + "' at offset " + std::to_string(err_off) + ": " +
                         reinterpret_cast<const char*>(msg));
  }
  pcre2_jit_compile(code, PCRE2_JIT_COMPLETE);  // best effort: the interpreter finds the same matches
  return std::shared_ptr<const CompiledRegex>(new CompiledRegex(code));
}

CompiledRegex::~CompiledRegex() { pcre2_code_free(code_); }

}  // namespace tern::tok
