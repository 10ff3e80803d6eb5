// Added tokens (special and user-added) are cut out of the text before normalization and BPE, as Hugging Face does:
// leftmost match first, the longest token at that position, honouring single_word, lstrip and rstrip.
// `normalized` tokens would be matched on normalized text; no normalizer is supported yet, so both kinds are matched
// on the raw text (which is then identical).
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"
#include "model/tokenizer/tokenizer_spec.h"

namespace tern::tok {

class CompiledRegex;

class AddedTokens {
 public:
  struct Segment {
    size_t begin = 0, end = 0;  // byte range of the input
    int32_t id = -1;            // the added token, or -1 for ordinary text
  };

  static Result<AddedTokens> build(const std::vector<AddedTokenSpec>& tokens);

  // Covers text with segments in order: ordinary text (id -1) and added tokens (with any stripped whitespace).
  void split(std::string_view text, std::vector<Segment>& out) const;

  const std::vector<AddedTokenSpec>& tokens() const { return tokens_; }

 private:
  bool word_boundary_ok(std::string_view text, size_t begin, size_t end) const;

  std::vector<AddedTokenSpec> tokens_;
  std::array<std::vector<int32_t>, 256> by_first_byte_;  // indexes into tokens_, longest content first
  std::shared_ptr<const CompiledRegex> word_char_;       // [\p{L}\p{N}_] for single_word tokens
};

}  // namespace tern::tok
