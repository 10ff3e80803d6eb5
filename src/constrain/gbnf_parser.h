// Parses GBNF (llama.cpp's grammar format, grammars/README.md) into a GrammarAst:
//   rule ::= alternatives          names: [A-Za-z0-9_-]+; the start rule is `root`
//   "literal" (escapes \n \r \t \\ \" \xHH \uHHHH \UHHHHHHHH), [a-z0-9_] / [^"\\] classes, `.` any character,
//   ( groups ), a | b, postfix * + ? {m} {m,} {m,n} {,n}, # comments to the end of the line,
//   token terminals <[id]>, <think> (the token whose text is the whole <...>) and <[TOOL_CALLS]> (a bracketed
//   special token's text; tern's extension), resolved against the vocabulary when the grammar is built.
// A rule's body may span lines; it ends where the next `name ::=` begins. Errors give line:column.
#pragma once

#include <string_view>

#include "constrain/grammar_ast.h"
#include "constrain/grammar_limits.h"
#include "core/status.h"

namespace tern::constrain {

Result<GrammarAst> parse_gbnf(std::string_view text, const GrammarLimits& limits);

}  // namespace tern::constrain
