#include "model/tokenizer/regex.h"

namespace tern::tok {

Result<std::shared_ptr<const CompiledRegex>> CompiledRegex::compile(const std::string& pattern, bool literal) {
  int err = 0;
  PCRE2_SIZE err_off = 0;
  // PCRE2_LITERAL rejects PCRE2_UCP (character classes do not apply to a literal).
  const uint32_t opts = PCRE2_UTF | (literal ? PCRE2_LITERAL : PCRE2_UCP);
  pcre2_code* code =
      pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pattern.data()), pattern.size(), opts, &err, &err_off, nullptr);
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
