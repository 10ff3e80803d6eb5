// The vocabulary as the grammar engine sees it: each token id -> the exact bytes it spells (byte-level BPE tokens
// mapped back to raw bytes, so a token may hold part of a UTF-8 character), plus a byte trie over all tokens that
// the mask computation walks. Special tokens spell no text: a grammar allows one only where it names it as a token
// terminal (`<[id]>` or `<[TOOL_CALLS]>`-style text, as llama.cpp's GBNF writes them). Inside, the grammar engine
// spells special token t as 0xFF followed by t's id in 4 bytes (big-endian): 0xFF never occurs in UTF-8, so no
// grammar's text can match it, and the few ordinary tokens that contain it (a byte-fallback or byte-level token for
// 0xFF), which no grammar can allow anyway, spell nothing here. Ids past the tokenizer's vocab (a padded lm_head)
// spell nothing. EOS is decided by the engine through TokenConstraint::can_end().
//
// A TokenVocabulary is an immutable shared handle (copies are cheap; concurrent const use is thread-safe). It also
// carries a cache of per-position masks for lexical rules (JSON strings, numbers, ...) shared by every grammar
// compiled against it: the second schema with a plain string field reuses the first one's work.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
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
  // bytes[i]: what token i spells ("" = never allowed). special: the special tokens (id, text), which spell no
  // text (their bytes[] entries are ignored) and match only token terminals that name them.
  static Result<TokenVocabulary> from_bytes(std::vector<std::string> bytes,
                                            std::vector<std::pair<int32_t, std::string>> special = {});

  int64_t size() const;                      // logits width: masks have ceil(size/32) words
  const std::string& bytes(int32_t id) const;  // the text token id spells; "" for special / unusable / out of range
  // What the grammar engine matches for token id: its bytes, or a special token's terminal code (0xFF + 4 bytes).
  const std::string& spelling(int32_t id) const;
  bool is_special(int32_t id) const;
  // The special token whose text is exactly `text` (e.g. "[TOOL_CALLS]"), if there is one.
  std::optional<int32_t> special_token(std::string_view text) const;

  const constrain::VocabImpl& impl() const { return *impl_; }

 private:
  explicit TokenVocabulary(std::shared_ptr<constrain::VocabImpl> impl) : impl_(std::move(impl)) {}
  std::shared_ptr<constrain::VocabImpl> impl_;
};

}  // namespace tern
