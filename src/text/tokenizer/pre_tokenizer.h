// Pre-tokenization: cuts a text segment into pieces (words) that BPE encodes independently.
// Steps run in order, each on every piece the previous one produced (Hugging Face semantics):
//   Split      regex (PCRE2, UTF + UCP, JIT) or literal pattern, with the five split behaviours and invert;
//   ByteLevel  optional prefix space and GPT-2 regex split. The byte -> character mapping itself is not done here:
//              the byte-level BPE model works on raw bytes directly (see bpe_model.h);
//   Metaspace  ' ' -> "▁", the prepend scheme, and optionally a cut before every "▁" (SentencePiece-style BPE).
// Invalid UTF-8 never reaches PCRE2: each maximal invalid subpart of the input is cut out as its own opaque piece,
// which no step splits or rewrites, and byte-level BPE then encodes those bytes exactly.
#pragma once

#include <cstddef>
#include <memory>
#include <string>
#include <vector>

#include "core/status.h"
#include "text/tokenizer/tokenizer_spec.h"

namespace tern::tok {

struct Piece {
  size_t begin = 0, end = 0;  // byte range in the buffer passed to split()
  bool opaque = false;        // invalid UTF-8 bytes: passed through unchanged
  bool at_start = false;      // starts the whole input (Metaspace prepend_scheme "first" prepends only here)
  bool cont = false;          // continues the text before it, cut only around invalid UTF-8: gets no prefix
};

class CompiledRegex;  // regex.h

class PreTokenizer {
 public:
  static Result<PreTokenizer> build(const std::vector<PreTokenizerStep>& steps);

  // buf holds the segment's text; steps that rewrite text (prefix space, Metaspace) append to it. pieces is
  // overwritten. at_start: the segment begins the input text (no added token before it).
  void split(std::string& buf, std::vector<Piece>& pieces, bool at_start = false) const;

  bool byte_level() const { return byte_level_; }

 private:
  struct Step {
    enum class Kind { kSplit, kPrefixSpace, kMetaspace } kind = Kind::kSplit;
    std::shared_ptr<const CompiledRegex> regex;
    SplitBehavior behavior = SplitBehavior::kIsolated;
    bool invert = false;
    std::string replacement;  // kMetaspace
    PrependScheme prepend = PrependScheme::kAlways;
  };
  // Rewrites one piece for Metaspace into a new range at the end of buf.
  static Piece metaspace(const Step& st, std::string& buf, const Piece& pc, std::string& tmp);
  std::vector<Step> steps_;
  bool byte_level_ = false;
};

}  // namespace tern::tok
