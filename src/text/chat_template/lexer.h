// Splits template source into text and tag segments, applying whitespace control the way
// @huggingface/jinja does with transformers' settings (trim_blocks, lstrip_blocks, no trailing
// newline), then splits tag contents into expression tokens.
#pragma once

#include <string>
#include <vector>

#include "core/status.h"

namespace tern::jinja {

struct Token {
  enum class Kind { Text, ExprOpen, ExprClose, StmtOpen, StmtClose, Name, Int, Float, String, Op, End };
  Kind kind;
  std::string text;
  int line;
};

Result<std::vector<Token>> tokenize(const std::string& source);

}  // namespace tern::jinja
