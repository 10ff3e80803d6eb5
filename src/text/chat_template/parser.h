// Recursive-descent parser for the Jinja subset chat templates use. Anything outside the subset
// (unknown tag, filter or test) is a parse error naming the construct and its line.
#pragma once

#include <vector>

#include "core/status.h"
#include "text/chat_template/ast.h"
#include "text/chat_template/lexer.h"

namespace tern::jinja {

// max_nesting: ChatTemplateLimits::max_nesting (the parser recursion and the depth of each expression tree).
Result<Body> parse_template(const std::vector<Token>& tokens, int max_nesting);

bool is_known_filter(const std::string& name);
bool is_known_test(const std::string& name);

}  // namespace tern::jinja
