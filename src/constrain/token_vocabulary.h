// The vocabulary as the grammar engine sees it: each token id -> the exact bytes it spells (byte-level BPE tokens
// mapped back to raw bytes, so a token may hold part of a UTF-8 character), plus a byte trie over all tokens that
// the mask computation walks. Special tokens (and ids past the tokenizer's vocab, e.g. a padded lm_head) spell
// nothing and are never allowed by a grammar: the engine decides EOS through TokenConstraint::can_end().
//
// A TokenVocabulary is an immutable shared handle (copies are cheap; concurrent const use is thread-safe). It also
// carries a cache of per-position masks for lexical rules (JSON strings, numbers, ...) shared by every grammar
// compiled against it: the second schema with a plain string field reuses the first one's work.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "core/status.h"

namespace tern {

class Tokenizer;

namespace constrain {
struct VocabImpl;
}

class TokenVocabulary {
 public:
  // model_vocab: the model's logits width (>= the tokenizer's vocab; extra ids spell nothing). 0: the tokenizer's.
  static Result<TokenVocabulary> from_tokenizer(const Tokenizer& tokenizer, int64_t model_vocab = 0);
  // bytes[i]: what token i spells ("" = never allowed, e.g. special tokens).
  static Result<TokenVocabulary> from_bytes(std::vector<std::string> bytes);

  int64_t size() const;                      // logits width: masks have ceil(size/32) words
  const std::string& bytes(int32_t id) const;  // "" for special / out of range

  const constrain::VocabImpl& impl() const { return *impl_; }

 private:
  explicit TokenVocabulary(std::shared_ptr<constrain::VocabImpl> impl) : impl_(std::move(impl)) {}
  std::shared_ptr<constrain::VocabImpl> impl_;
};

}  // namespace tern
