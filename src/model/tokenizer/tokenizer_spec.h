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
  bool normalized = false;   // matched against normalized text (equal to the raw text while no normalizer exists)
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

using PreTokenizerStep = std::variant<SplitSpec, ByteLevelPreSpec>;

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
// SentencePiece-style: Sequence[Replace("▁", " "), ByteFallback, Fuse, Strip(" ", start, 0)] (Llama-2, Mistral).
struct PieceDecoderSpec {
  std::string from = "\xE2\x96\x81", to = " ";  // Replace
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
