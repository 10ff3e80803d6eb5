// A typed description of a Hugging Face tokenizer.json: what the parser produced and the stages are built from.
// Each pipeline stage is a variant so that new kinds (Metaspace, NFC, ByteFallback decoder, ...) are added as new
// alternatives without touching the others. Kinds not listed here are rejected by the parser with a Status.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <variant>
#include <vector>

#include "core/status.h"

namespace tern::tok {

struct AddedTokenSpec {
  int32_t id = -1;
  std::string content;
  bool single_word = false;  // match only when not inside a word
  bool lstrip = false;       // swallow whitespace on the left
  bool rstrip = false;       // swallow whitespace on the right
  bool normalized = false;   // matched in the normalized text, its content normalized the same way
  bool special = false;      // skipped by decode(skip_special_tokens)
};

// --- normalizers (applied in order to the text between added tokens) ---------------------------------------------
struct PrependSpec {
  std::string prepend;  // put before non-empty text (SentencePiece's dummy prefix "▁")
};
struct ReplaceSpec {
  std::string pattern;  // a literal string (regex patterns are rejected by the parser)
  std::string content;
};
// Unicode normalization forms (Qwen2/3 use NFC), computed with ICU.
enum class UnicodeForm { kNFC, kNFD, kNFKC, kNFKD };
struct UnicodeNormSpec {
  UnicodeForm form = UnicodeForm::kNFC;
};
using NormalizerStep = std::variant<PrependSpec, ReplaceSpec, UnicodeNormSpec>;

// --- pre-tokenizers ---------------------------------------------------------------------------------------------
enum class SplitBehavior { kRemoved, kIsolated, kMergedWithPrevious, kMergedWithNext, kContiguous };

struct SplitSpec {
  std::string pattern;
  bool is_regex = true;  // false: the pattern is a literal string
  SplitBehavior behavior = SplitBehavior::kIsolated;
  bool invert = false;
};

struct ByteLevelPreSpec {
  bool add_prefix_space = false;
  bool use_regex = true;  // split with the GPT-2 regex before the byte mapping
};

// SentencePiece's word boundary as a pre-tokenizer: ' ' becomes `replacement` (one character, "▁"); a replacement is
// put in front of the text per prepend_scheme (kFirst: only a piece that starts the whole input, not one after an
// added token); with `split`, the text is cut before every replacement (Hugging Face's MergedWithNext).
enum class PrependScheme { kFirst, kAlways, kNever };
struct MetaspaceSpec {
  std::string replacement = "\xE2\x96\x81";
  PrependScheme prepend_scheme = PrependScheme::kAlways;
  bool split = true;
};

using PreTokenizerStep = std::variant<SplitSpec, ByteLevelPreSpec, MetaspaceSpec>;

// --- model -----------------------------------------------------------------------------------------------------
struct BpeSpec {
  std::vector<std::pair<std::string, int32_t>> vocab;      // vocab-form token -> id
  std::vector<std::pair<std::string, std::string>> merges;  // in rank order
  bool ignore_merges = false;  // a pre-token that is itself in the vocab is emitted whole
  bool byte_fallback = false;  // unknown characters become <0xXX> byte tokens
  bool fuse_unk = false;
  std::optional<std::string> unk_token;
};

// --- post-processors ---------------------------------------------------------------------------------------------
struct TemplatePiece {
  bool is_sequence = false;   // the encoded text ("$A")
  std::vector<int32_t> ids;   // a special token's ids otherwise
};
struct TemplateSpec {
  std::vector<TemplatePiece> single;
};
// monostate: no post-processor (or one that never changes ids, like ByteLevel).
using PostProcessorSpec = std::variant<std::monostate, TemplateSpec>;

// --- decoders ------------------------------------------------------------------------------------------------------
struct ByteLevelDecoderSpec {};
// SentencePiece-style: Sequence[Replace("▁", " "), ByteFallback, Fuse, Strip(" ", start, 0)] (Llama-2, Mistral),
// or a Metaspace decoder (alone or in place of the Replace step).
struct PieceDecoderSpec {
  std::string from = "\xE2\x96\x81", to = " ";  // Replace
  bool drop_in_first = false;  // Metaspace (prepend_scheme not never): the first token loses every `from`
  bool byte_fallback = false;                     // <0xXX> tokens are that byte
  int strip_start = 0;                            // leading spaces removed from the decoded text
};
// monostate: no decoder (tokens are joined with a space, as Hugging Face does).
using DecoderSpec = std::variant<std::monostate, ByteLevelDecoderSpec, PieceDecoderSpec>;

struct TokenizerSpec {
  std::vector<AddedTokenSpec> added_tokens;
  std::vector<NormalizerStep> normalizer;       // applied in order
  std::vector<PreTokenizerStep> pre_tokenizer;  // applied in order
  BpeSpec model;
  PostProcessorSpec post_processor;
  DecoderSpec decoder;
};

// Parses tokenizer.json text. Unknown or unsupported features give an error naming them.
Result<TokenizerSpec> parse_tokenizer_json(const std::string& text);

}  // namespace tern::tok
