// The tool-calling and token-bias fields of OpenAI chat requests: `tools`, `tool_choice`,
// `parallel_tool_calls`, assistant messages' `tool_calls`, and `logit_bias` (both endpoints). Each
// malformed value is a 400 naming the exact field (tools[1].function.name, messages[2].tool_calls[0].id).
#pragma once

#include <optional>
#include <string>

#include <nlohmann/json.hpp>

#include "api/openai_request.h"

namespace tern::api {

// tools / tool_choice / parallel_tool_calls of a chat body into r.tools.
std::optional<ApiError> parse_tool_fields(const nlohmann::ordered_json& body, OpenAiRequest& r);

// An assistant message's tool_calls (param e.g. "messages[2].tool_calls") into the form chat templates
// read, as transformers passes them: {"id", "type": "function", "function": {"name", "arguments"}} with
// arguments parsed into an object (Llama's and Mistral's templates apply tojson to it; Qwen's accept either).
std::optional<ApiError> parse_message_tool_calls(const nlohmann::ordered_json& v, const std::string& param, nlohmann::ordered_json& out);

// logit_bias: {"token id": bias in [-100, 100]}; ids are checked against the vocabulary later (prepare()).
std::optional<ApiError> parse_logit_bias(const nlohmann::ordered_json& v, SamplingParams& s);

}  // namespace tern::api
