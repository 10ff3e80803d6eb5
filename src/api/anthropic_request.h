// Anthropic Messages API bodies (POST /v1/messages, /v1/messages/count_tokens) turned into tern's typed chat
// request, so that one generation path serves both APIs. Every top-level field is classified, as for
// OpenAI's (anthropic_request.cpp has the table): implemented, accepted as a hint that changes nothing a
// client can observe (cache_control, metadata), or a 400 naming it. Content blocks map onto chat messages:
//   system (string or text blocks)       -> a leading system message
//   text blocks                          -> the message's content, joined
//   assistant tool_use {id, name, input} -> tool_calls [{id, type: function, function: {name, arguments}}]
//   user tool_result {tool_use_id, ...}  -> a tool message {tool_call_id, content}, before the user's text
//   thinking / redacted_thinking         -> dropped (earlier turns' thinking is not part of the context)
//   image / document / server tools      -> 400s naming them
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <variant>

#include "api/openai_request.h"

namespace tern::api {

struct AnthropicRequest {
  OpenAiRequest chat;  // endpoint kChat, n = 1; the parameters' errors use Anthropic's names
};

// count_tokens: the same body less max_tokens / sampling / stream.
std::variant<AnthropicRequest, ApiError> parse_anthropic_request(std::string_view body, bool count_tokens = false);

// The OpenAI parameter an error names, in Anthropic's words (max_completion_tokens -> max_tokens, ...).
std::string anthropic_param(const std::string& openai_param);

}  // namespace tern::api
