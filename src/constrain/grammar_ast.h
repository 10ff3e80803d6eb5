// The grammar as parsed (GBNF text, or a regex): rules of expressions over Unicode code points. The builder
// (grammar_builder.cpp) turns it into byte-level automata; print_expr gives the canonical GBNF text back.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace tern::constrain {

struct Expr {
  enum Kind { kLiteral, kClass, kRef, kSeq, kAlt, kRepeat, kToken };
  Kind kind = kSeq;                                   // an empty kSeq is the empty string ""
  std::vector<uint32_t> cps;                          // kLiteral: code points
  std::vector<std::pair<uint32_t, uint32_t>> ranges;  // kClass: inclusive code point ranges
  bool negated = false;                               // kClass: [^...] (`.` is a negated empty class)
  int32_t rule = -1;                                  // kRef: rule index
  std::vector<Expr> kids;                             // kSeq / kAlt: items; kRepeat: the one repeated item
  int64_t min = 0, max = -1;                          // kRepeat: {min,max}, max -1 = unbounded
  // kToken: one special token, by id (`<[id]>`, token >= 0) or by its text (`<[TOOL_CALLS]>` style: token_text
  // holds the whole `<...>`, resolved against the vocabulary when the grammar is built).
  int64_t token = -1;
  std::string token_text;
};

struct GrammarAst {
  std::vector<std::string> names;  // [rules]
  std::vector<Expr> bodies;        // [rules]
  int32_t root = -1;
};

// GBNF text of one expression (rule references by name); canonical: the same tree always prints the same.
std::string print_expr(const Expr& e, const std::vector<std::string>& names);
// The whole grammar, one rule per line, root first.
std::string print_grammar(const GrammarAst& g);
// A GBNF string literal for raw UTF-8 text (quotes, backslash and control characters escaped).
std::string gbnf_literal(std::string_view utf8);

}  // namespace tern::constrain
