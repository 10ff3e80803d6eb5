// A compiled PCRE2 pattern (UTF + UCP, JIT when available), shareable between threads: matching only needs a
// per-call MatchData.
#pragma once

#ifndef PCRE2_CODE_UNIT_WIDTH
#define PCRE2_CODE_UNIT_WIDTH 8
#endif
#include <pcre2.h>

#include <memory>
#include <string>

#include "core/status.h"

namespace tern::tok {

class CompiledRegex {
 public:
  static Result<std::shared_ptr<const CompiledRegex>> compile(const std::string& pattern, bool literal);
  ~CompiledRegex();
  CompiledRegex(const CompiledRegex&) = delete;
  CompiledRegex& operator=(const CompiledRegex&) = delete;
  const pcre2_code* code() const { return code_; }

 private:
  explicit CompiledRegex(pcre2_code* code) : code_(code) {}
  pcre2_code* code_;
};

// Holds the whole-match offsets of one match at a time; one per thread / call.
struct MatchData {
  MatchData() : md(pcre2_match_data_create(1, nullptr)) {}
  ~MatchData() { pcre2_match_data_free(md); }
  MatchData(const MatchData&) = delete;
  MatchData& operator=(const MatchData&) = delete;
  pcre2_match_data* md;
};

}  // namespace tern::tok
