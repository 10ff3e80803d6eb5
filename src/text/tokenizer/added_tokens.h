// Added tokens (special and user-added) are cut out of the text before BPE, as Hugging Face does: leftmost match
// first, the longest token at that position, honouring single_word, lstrip and rstrip. A match that fails
// single_word is skipped whole (the search resumes after it), like Hugging Face's Aho-Corasick scan.
// The tokenizer holds two sets: tokens with normalized=false are cut from the raw text; tokens with normalized=true
// (their content normalized too) are then cut from each remaining segment once it has been normalized.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"
#include "text/tokenizer/tokenizer_spec.h"

namespace tern::tok {

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
  bool empty() const { return tokens_.empty(); }

 private:
  std::vector<AddedTokenSpec> tokens_;
  std::array<std::vector<int32_t>, 256> by_first_byte_;  // indexes into tokens_, longest content first
};

// Rust regex's Unicode \w (what Hugging Face's single_word test uses): Alphabetic, marks, decimal digits,
// connector punctuation and join controls (ZWJ / ZWNJ).
bool is_word_char(uint32_t cp);

}  // namespace tern::tok
