// Token ids -> bytes. A decoder here is per-token (what a token contributes may depend only on whether it is the
// first one emitted), which is what lets StreamingDecoder emit text as tokens arrive.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/status.h"
#include "model/tokenizer/tokenizer_spec.h"

namespace tern::tok {

class Decoder {
 public:
  // tokens: id -> vocab string (added tokens included), "" for unused ids.
  static Result<Decoder> build(const DecoderSpec& spec, const std::vector<std::string>& tokens);

  // Appends the bytes of token `id` (0 <= id < size); `first`: no token was emitted before it.
  void append(int32_t id, bool first, std::string& out) const {
    if (join_with_space_ && !first) out += ' ';
    const std::string& b = first && !first_bytes_.empty() ? first_bytes_[id] : bytes_[id];
    size_t skip = 0;
    if (first)
      while (skip < b.size() && skip < size_t(strip_start_) && b[skip] == ' ') ++skip;
    out.append(b, skip);
  }

 private:
  std::vector<std::string> bytes_;        // per id: what the token decodes to
  std::vector<std::string> first_bytes_;  // per id, as the first token (Metaspace drops the replacement); or empty
  bool join_with_space_ = false;          // no decoder: Hugging Face joins the token strings with spaces
  int strip_start_ = 0;                   // spaces stripped from the start of the first token (Strip decoder)
};

}  // namespace tern::tok
