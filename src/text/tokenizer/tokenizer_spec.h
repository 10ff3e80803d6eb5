// A typed description of a Hugging Face tokenizer.json: what the parser produced and the stages are built from.
// Each pipeline stage is a variant so that new kinds (Metaspace, NFC, ByteFallback decoder, ...) are added as new
// alternatives without touching the others. Kinds not listed here are rejected by the parser with a Status.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
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
// Hugging Face's decoders turn the list of token strings into text step by step; tern decodes token by token (what a
// token contributes may depend only on whether it is the first one), which is what lets StreamingDecoder emit text
// as tokens arrive. So a decoder is: steps applied to each token string in order, then the join, then leading
// characters stripped from the text. Chains that cannot be computed that way are rejected by the parser, naming the
// step (see docs/tokenizer.md).
struct ReplaceStep {  // every `from` (a literal string) becomes `to`
  std::string from, to;
};
struct ByteFallbackStep {};  // a "<0xXX>" token is that byte
struct StripStep {           // up to `start` leading and `stop` trailing `content` characters removed
  std::string content;       // one character
  int start = 0, stop = 0;
};
struct MetaspaceStep {       // `replacement` becomes a space, or nothing in the first token (drop_in_first)
  std::string replacement;
  bool drop_in_first = true;
};
struct WordPieceStep {       // a token after the first loses its `prefix` or gains a leading space; then cleanup
  std::string prefix = "##";
  bool cleanup = true;
};
struct ByteLevelStep {};     // the byte-level alphabet back to bytes (a token outside it stays its own UTF-8)
using DecoderStep = std::variant<ReplaceStep, ByteFallbackStep, StripStep, MetaspaceStep, WordPieceStep, ByteLevelStep>;

struct DecoderSpec {
  bool present = false;                // no decoder: tokens are joined with a space, as Hugging Face does
  std::vector<DecoderStep> per_token;  // in order, on each token
  std::string strip_content = " ";     // after the join (Strip after Fuse): leading characters removed
  int strip_start = 0;
};

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

// A merge written as one string, "a b": the two tokens (an error unless exactly one space separates them).
Status split_merge(std::string_view s, std::pair<std::string, std::string>* out);

}  // namespace tern::tok
