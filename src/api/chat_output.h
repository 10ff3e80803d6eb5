// Chat replies split into reasoning_content, content and tool_calls (text/tool_calls' parser), for the
// whole response and for streams: what each choice's parser is set up with, and the chunks a parsed
// delta becomes (OpenAI's shapes: delta.reasoning_content, delta.content, delta.tool_calls[{index, id,
// type, function: {name, arguments}}], then a last chunk with finish_reason "tool_calls" when calls came).
#pragma once

#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "api/openai_request.h"
#include "api/openai_response.h"
#include "text/tool_calls/chat_output_parser.h"

namespace tern::api {

// The parser options for one request, or null when its replies are plain content (no tools in play
// and no reasoning format). prompt_text: the rendered prompt (a template that opens <think> itself).
std::unique_ptr<ChatParserOptions> chat_parser_options(const ChatFormat& format, const OpenAiRequest& r,
                                                       const std::string& prompt_text, uint64_t id_seed);

// Fills the choice's parsed fields from its whole text (non-streaming).
void parse_choice(const ChatParserOptions& options, ChoiceState& c);

// The finish_reason of a chat choice: "tool_calls" when calls were returned and the reply was not cut off.
nlohmann::ordered_json chat_finish_reason(EngineFinish f, bool has_calls);

// One streamed event of a parsed choice: the chunks for its delta (reasoning / content with the event's
// logprobs, then one chunk per call), and on finish a last chunk with empty delta and the finish_reason.
// calls_sent: calls of this choice streamed so far (the `index` of the next); calls_complete: calls
// the parser returned (a call whose pieces went out but that was cut off does not make it "tool_calls").
void stream_parsed_event(const ResponseMeta& meta, const Tokenizer& tok, int index, const EngineOutput& ev,
                         const ChatDelta& d, int& calls_sent, int calls_complete, bool include_usage_field,
                         std::string& out);

nlohmann::ordered_json tool_calls_json(const std::vector<ToolCall>& calls, int first_index, bool with_index);

}  // namespace tern::api
