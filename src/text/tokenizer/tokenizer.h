// The tokenizer front door: loads a Hugging Face tokenizer.json (+ tokenizer_config.json) and encodes / decodes.
//
// Pipeline (each stage in its own file, built from the typed spec in tokenizer_spec.h):
//   added tokens (normalized=false) split out (added_tokens.cpp) -> normalizer (normalizer.cpp) -> added tokens
//   (normalized=true) -> pre-tokenizer (pre_tokenizer.cpp) -> BPE (bpe_model.cpp) -> post-processor
//   (post_processor.cpp);   decode: decoder.cpp, streaming_decoder.cpp.
//
// Invalid UTF-8 input (docs/tokenizer.md): encode() never fails. Each maximal invalid subpart is cut out as its own
// piece (no prefix space or "▁" is added after it) and, with a byte-level or byte-fallback model, encoded as its
// exact bytes, so decode_bytes(encode(x)) == x for any bytes x (up to a SentencePiece dummy prefix). decode()
// replaces invalid sequences in its output by U+FFFD (like Hugging Face's decode), so it always returns valid UTF-8.
//
// A Tokenizer is an immutable shared handle: copies are cheap, and concurrent const calls are thread-safe.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"

namespace tern {

namespace tok {
struct TokenizerSpec;
}

class Tokenizer {
 public:
  // A tokenizer.json file, or a model directory containing tokenizer.json (tokenizer_config.json beside it is read
  // when present, for bos/eos token strings and add_bos_token / add_eos_token).
  static Result<Tokenizer> load(const std::string& path);
  // From in-memory JSON texts (config_json may be empty).
  static Result<Tokenizer> from_json(const std::string& tokenizer_json, const std::string& config_json = "");
  // From a parsed tokenizer.json (text/tokenizer/tokenizer_spec.h): the GGUF reader fills the vocabulary and
  // merges straight from the file's arrays instead of writing them out as JSON text and parsing it back.
  static Result<Tokenizer> from_spec(tok::TokenizerSpec spec, const std::string& config_json = "");

  std::vector<int32_t> encode(std::string_view text, bool add_special_tokens = true) const;
  // Valid UTF-8 (invalid byte sequences spelled by the ids become U+FFFD). Ids outside the vocab are skipped.
  std::string decode(const std::vector<int32_t>& ids, bool skip_special_tokens = false) const;
  // The exact bytes the ids spell, which may be invalid UTF-8.
  std::string decode_bytes(const std::vector<int32_t>& ids, bool skip_special_tokens = false) const;

  int64_t vocab_size() const;  // including added tokens
  std::optional<int32_t> token_to_id(std::string_view token) const;
  std::string id_to_token(int32_t id) const;  // the vocab string ("" if out of range)
  std::optional<int32_t> bos_id() const;
  std::optional<int32_t> eos_id() const;
  bool is_special(int32_t id) const;

  struct Impl;

 private:
  explicit Tokenizer(std::shared_ptr<const Impl> impl) : impl_(std::move(impl)) {}
  std::shared_ptr<const Impl> impl_;
  friend class StreamingDecoder;
};

// Streaming, UTF-8-safe detokenization: push() returns only complete UTF-8 characters; bytes of a partial
// character are held until the next token completes them; flush() returns what is left (invalid trailing bytes
// become U+FFFD). Invalid sequences inside the stream become U+FFFD exactly where decode() puts them, so
// concatenating all push() outputs and flush() equals decode(all ids).
class StreamingDecoder {
 public:
  explicit StreamingDecoder(const Tokenizer& tokenizer, bool skip_special_tokens = false);
  std::string push(int32_t id);
  std::string flush();

 private:
  Tokenizer tokenizer_;  // a shared handle: the decoder may outlive the caller's copy
  bool skip_special_ = false;
  bool first_ = true;     // no token emitted yet
  int strip_left_ = 0;    // leading characters the decoder still strips (tok::Decoder::State)
  std::string pending_;  // bytes of an unfinished character
};

}  // namespace tern
