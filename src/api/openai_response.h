// OpenAI response bodies: whole responses and the SSE chunks of a stream, for completions and chat.
// The server accumulates engine events per choice (ChoiceState) and asks these builders for JSON.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "api/openai_request.h"
#include "engine/engine.h"
#include "text/tool_calls/chat_output_parser.h"

namespace tern {
class Tokenizer;
}

namespace tern::api {

// What one choice has produced so far.
struct ChoiceState {
  std::string text;
  std::vector<int32_t> tokens;
  std::vector<float> logprobs;
  std::vector<std::vector<TokenLogprob>> top;
  EngineFinish finish = EngineFinish::kNone;
  std::string error;
  std::string stop_string;  // the stop string that ended it, if one did
  int64_t prompt_tokens = 0, cached_prompt_tokens = 0, completion_tokens = 0;
  // Chat replies split by the tool-call / reasoning parser (chat_output.h): then the message is these.
  bool parsed = false;
  std::string content, reasoning;
  std::vector<ToolCall> calls;

  void add(const EngineOutput& out);
};

// The fields every response and chunk of one request share.
struct ResponseMeta {
  Endpoint endpoint = Endpoint::kCompletions;
  std::string id;       // "cmpl-..." / "chatcmpl-..."
  int64_t created = 0;  // unix seconds
  std::string model;
  bool want_logprobs = false;
};

// "length", "stop", or null (not finished / cancelled / error).
nlohmann::ordered_json finish_reason_json(EngineFinish f);
nlohmann::ordered_json usage_json(const std::vector<ChoiceState>& choices, int n_per_prompt);

// The whole (non-streaming) response. echo_prefix[i]: text prepended to choice i (completions echo).
nlohmann::ordered_json full_response(const ResponseMeta& meta, const Tokenizer& tok, const std::vector<ChoiceState>& choices,
                             const std::vector<std::string>& echo_prefix, int n_per_prompt);

// One streamed piece of choice `index`: the event's new text/tokens (and finish).
// first: chat's first chunk carries the assistant role.
nlohmann::ordered_json stream_chunk(const ResponseMeta& meta, const Tokenizer& tok, int index, const EngineOutput& out,
                            const std::string& text, bool first, bool include_usage_field);
// A chat chunk of choice `index` with this delta; the logprobs of lp's tokens when asked for (lp may be null).
nlohmann::ordered_json chat_chunk(const ResponseMeta& meta, const Tokenizer& tok, int index, const EngineOutput* lp,
                          nlohmann::ordered_json delta, nlohmann::ordered_json finish_reason, bool include_usage_field);
// The last chunk with include_usage: no choices, the usage of the whole request.
nlohmann::ordered_json usage_chunk(const ResponseMeta& meta, const nlohmann::ordered_json& usage);

// "data: <json>\n\n"
std::string sse_event(const nlohmann::ordered_json& j);
inline constexpr const char* kSseDone = "data: [DONE]\n\n";

std::string dump_json(const nlohmann::ordered_json& j);  // compact; invalid UTF-8 replaced, never throws

}  // namespace tern::api
