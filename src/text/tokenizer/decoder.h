// Token ids -> bytes. A decoder here is per-token (what a token contributes may depend only on whether it is the
// first one emitted), plus leading characters stripped from the text, which is what lets StreamingDecoder emit
// text as tokens arrive.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/status.h"
#include "text/tokenizer/tokenizer_spec.h"

namespace tern::tok {

class Decoder {
 public:
  // tokens: id -> vocab string (added tokens included), "" for unused ids.
  static Result<Decoder> build(const DecoderSpec& spec, const std::vector<std::string>& tokens);

  // Where one decode stands: whether a token was emitted, how many leading characters are still to strip.
  struct State {
    bool first = true;
    int strip_left = 0;
  };
  State start() const { return State{true, strip_start_}; }

  // Appends the bytes of token `id` (0 <= id < size).
  void append(int32_t id, State& st, std::string& out) const {
    if (join_with_space_ && !st.first) out += ' ';
    const std::string& b = st.first && !first_bytes_.empty() ? first_bytes_[id] : bytes_[id];
    st.first = false;
    size_t skip = 0;
    while (st.strip_left > 0 && b.compare(skip, strip_content_.size(), strip_content_) == 0) {
      skip += strip_content_.size();
      --st.strip_left;
    }
    if (skip < b.size()) st.strip_left = 0;  // another character ends the stripping (it may span tokens)
    out.append(b, skip);
  }

 private:
  std::vector<std::string> bytes_;        // per id: what the token decodes to
  std::vector<std::string> first_bytes_;  // per id, as the first token (Metaspace, WordPiece); or empty
  bool join_with_space_ = false;          // no decoder: Hugging Face joins the token strings with spaces
  std::string strip_content_;             // Strip after the join: this character, strip_start_ times at most
  int strip_start_ = 0;
};

}  // namespace tern::tok
