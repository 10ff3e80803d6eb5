// Regular expressions (ECMAScript-like subset) -> grammar expressions, for `regex` requests and JSON Schema
// `pattern`. Supported: literals, escapes (\d \w \s \D \W \S \n \r \t \f \v \0 \xHH \uHHHH \u{H..}, escaped
// punctuation), classes with ranges and negation, `.` (any character but \n and \r), groups ( ), (?: ), (?<name> ),
// alternation, quantifiers * + ? {m} {m,} {m,n} (a lazy `?` suffix is accepted: it does not change the language).
// The pattern is anchored at both ends (a leading ^ and a trailing $ are accepted and redundant). Errors name what
// is unsupported: backreferences, lookaround, \b, \p{..}, anchors elsewhere, possessive quantifiers.
#pragma once

#include <string_view>

#include "constrain/grammar_ast.h"
#include "constrain/grammar_limits.h"
#include "core/status.h"

namespace tern::constrain {

// json_string: the expression generates the *inside of a JSON string* whose decoded value matches the pattern:
// '"' and '\' are produced as escapes, control characters are left out of classes.
Result<Expr> parse_regex(std::string_view pattern, bool json_string, const GrammarLimits& limits);

}  // namespace tern::constrain
