// Normalizers: rewrite the text between added tokens before pre-tokenization (SentencePiece-style BPE:
// Prepend("▁") then Replace(" ", "▁")). Applied to each segment separately, as Hugging Face does, so the dummy
// prefix also follows every special token.
#pragma once

#include <string>
#include <vector>

#include "text/tokenizer/tokenizer_spec.h"

namespace tern::tok {

// Rewrites `text` in place; `tmp` is reusable working memory.
void normalize(const std::vector<NormalizerStep>& steps, std::string& text, std::string& tmp);

}  // namespace tern::tok
