// OpenAI request bodies (/v1/completions, /v1/chat/completions) parsed and validated into typed
// requests, and OpenAI's error body. A field of the wrong type or out of range is a 400 naming the field
// in `param`; so is a field tern does not implement, or an unknown one (openai_fields.cpp classifies
// them all). null means "not given".
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include <nlohmann/json.hpp>

#include "runtime/sampling_params.h"

namespace tern::api {

struct ApiError {
  int http_status = 400;
  std::string message;
  std::string type = "invalid_request_error";
  std::string param;  // "" -> null
  std::string code;   // "" -> null
};
// {"error": {"message", "type", "param", "code"}}
std::string error_body(const ApiError& e);
ApiError bad_param(const std::string& param, const std::string& message);

enum class Endpoint { kCompletions, kChat };

using PromptInput = std::variant<std::string, std::vector<int32_t>>;  // text, or token ids

// tool_choice: kNone (no tools, or "none"), kAuto (the default with tools), kRequired, kNamed.
enum class ToolChoice { kNone, kAuto, kRequired, kNamed };
struct ToolFields {
  nlohmann::ordered_json tools = nlohmann::ordered_json::array();  // validated [{"type": "function", "function": {...}}]
  ToolChoice choice = ToolChoice::kNone;
  std::string named;      // kNamed: the function's name
  bool parallel = true;   // parallel_tool_calls
};

// The grammar a request asks for (constraint_request.h compiles it).
struct ConstraintSpec {
  enum class Kind { kNone, kJsonObject, kJsonSchema, kGbnf, kRegex };
  Kind kind = Kind::kNone;
  nlohmann::ordered_json schema;  // kJsonSchema
  std::string text;       // kGbnf, kRegex
  std::string param;      // the field errors name
};

struct OpenAiRequest {
  Endpoint endpoint = Endpoint::kCompletions;
  std::string model;
  std::vector<PromptInput> prompts;   // completions: one or more prompts
  nlohmann::ordered_json messages;            // chat: validated messages, content flattened to strings
  std::optional<int64_t> max_tokens;  // max_tokens, or chat's max_completion_tokens
  SamplingParams sampling;
  int n = 1;
  std::vector<std::string> stop;
  bool stream = false;
  bool include_usage = false;         // stream_options.include_usage
  int top_logprobs = -1;              // -1: no logprobs; else alternatives per token (0..20)
  bool echo = false;                  // completions: the prompt text precedes the completion
  bool ignore_eos = false;            // vLLM extension
  // tern's latency targets for this request (milliseconds), tightening the server's --slo-* defaults.
  std::optional<double> slo_ttft_ms, slo_tpot_ms;
  std::string user;
  ToolFields tools;                   // chat only
  ConstraintSpec constraint;          // response_format (chat), grammar, regex
  std::vector<std::string> ignored_fields;  // accepted and ignored (openai_fields.cpp): the server logs them once
};

// The body as sent; errors are 400s naming the parameter.
std::variant<OpenAiRequest, ApiError> parse_openai_request(Endpoint endpoint, std::string_view body);

// Limits the server enforces on every request (also what the parser's range checks use).
inline constexpr int kMaxChoices = 128;       // n x prompts
inline constexpr int kMaxTopLogprobs = 20;
inline constexpr int kMaxStopStrings = 16;
inline constexpr int kMaxTools = 128;

}  // namespace tern::api
