// Constrained-decoding fields of a request -> the compiled grammar on its EngineRequest:
//   response_format {"type": "json_object"} / {"type": "json_schema", "json_schema": {"schema", "strict", ...}}
//     (chat, as OpenAI), tern's `grammar` (GBNF, llama.cpp's format) and `regex` (both endpoints), and
//   tool_choice "required" / a named function: the arguments generated under the tools' parameter schemas
//     (as vLLM does it, for any model whatever its template), read back by the chat output parser.
// An unsupported schema keyword, a bad grammar or pattern is a 400 naming the field (`param`) and, in the
// message, the keyword and where it is.
#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <variant>

#include <nlohmann/json.hpp>

#include "api/openai_request.h"
#include "core/status.h"
#include "text/tool_calls/tool_call_format.h"

namespace tern {
class Grammar;
class GrammarCache;
class TokenVocabulary;
}  // namespace tern

namespace tern::api {

// response_format / grammar / regex of the body into r.constraint (at most one of them).
std::optional<ApiError> parse_constraint_fields(Endpoint endpoint, const nlohmann::ordered_json& body, OpenAiRequest& r);

// The JSON Schema a forced tool choice generates under: the named tool's parameters, or for "required"
// [{"name": <one of the tools>, "parameters": <its parameters>}, ...] (one item without parallel calls).
nlohmann::ordered_json forced_tool_schema(const ToolFields& tf);

// tool_choice "auto" with a Hermes-format template (Qwen2.5, Qwen3, Hermes): GBNF for free text that never
// contains "<tool_call>", then optionally calls in the template's exact format, each
// `<tool_call>\n{"name": "<tool>", "arguments": <its schema>}\n</tool_call>` (several joined by "\n" when
// parallel). Once a call has begun it is constrained by its tool's schema; text stays free.
// schema_gbnf(i): the GBNF of tool i's parameters (json_schema_to_gbnf); its rules are renamed apart here.
Result<std::string> hermes_auto_gbnf(const ToolFields& tf,
                                     const std::function<Result<std::string>(const nlohmann::ordered_json&)>& schema_gbnf);

// tool_choice "auto" with a Llama 3.1 JSON template: free text that does not start with "{" (leading
// whitespace aside), or calls `{"name": "<tool>", "parameters": <its schema>}` joined by "; " when parallel.
Result<std::string> llama3_auto_gbnf(const ToolFields& tf,
                                     const std::function<Result<std::string>(const nlohmann::ordered_json&)>& schema_gbnf);

// GBNF (one rule body, no rule calls: its masks are shared by every grammar that uses it) for any text that never
// contains `marker`, an ASCII string whose first character occurs nowhere else in it ("[TOOL_CALLS]").
std::string text_without(std::string_view marker);

// tool_choice "auto" with a Mistral template: free text that never contains [TOOL_CALLS] (neither the special token
// nor its spelling), then optionally the [TOOL_CALLS] token and calls in the template's format, nothing after:
//   v3 / v7 (name_args false)  [TOOL_CALLS] [{"name": "<tool>", "arguments": <its schema>, "id": "<9 alnum>"?}, ...]
//                               (one item when not parallel; the space after the token is optional)
//   v11 (name_args true)       [TOOL_CALLS]<tool>[ARGS]<its schema>, repeated after [TOOL_CALLS] when parallel
// [TOOL_CALLS] and [ARGS] are token terminals (`<[id]>`) where the vocabulary has them as special tokens, else text.
Result<std::string> mistral_auto_gbnf(const ToolFields& tf,
                                      const std::function<Result<std::string>(const nlohmann::ordered_json&)>& schema_gbnf,
                                      const TokenVocabulary& vocab, bool name_args);

// Whether tool_choice "auto" is constrained for a template of this format: Hermes, Llama 3.1 JSON and Mistral
// (whose [TOOL_CALLS] trigger is a special token: a token terminal of the grammar).
inline bool auto_constrained(ToolCallFormat f) {
  return f == ToolCallFormat::kHermes || f == ToolCallFormat::kLlama3 || f == ToolCallFormat::kMistral;
}

// The grammar of a request (null when it has none), compiled once per distinct grammar by the cache.
// auto_format: the template's format; tool_choice "auto" is constrained where auto_constrained(its tool_calls).
std::variant<std::shared_ptr<const Grammar>, ApiError> compile_request_grammar(GrammarCache& cache,
                                                                             const OpenAiRequest& r,
                                                                             const ChatFormat& auto_format = {});

}  // namespace tern::api
