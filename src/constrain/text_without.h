// GBNF for free text that never contains a marker ("<tool_call>", "[TOOL_CALLS]"): the free-text part of the
// tool_choice "auto" grammars (api/constraint_request.cpp). One rule body without rule calls, so its masks are
// cached in the vocabulary and shared by every grammar that uses it, and warm_up_masks can make them ahead.
#pragma once

#include <string>
#include <string_view>

namespace tern::constrain {

// marker: ASCII, at least one character, whose first character occurs nowhere else in it.
std::string text_without(std::string_view marker);

}  // namespace tern::constrain
