// Parsed chat replies: see chat_output.h.
#include "api/chat_output.h"

#include <algorithm>

#include "api/constraint_request.h"

namespace tern::api {

using json = nlohmann::ordered_json;

std::unique_ptr<ChatParserOptions> chat_parser_options(const ChatFormat& format, const OpenAiRequest& r,
                                                       const std::string& prompt_text, uint64_t id_seed) {
  const ToolFields& tf = r.tools;
  const bool tools = tf.choice != ToolChoice::kNone;
  if (!tools && !format.reasoning) return nullptr;
  auto o = std::make_unique<ChatParserOptions>();
  o->format = tools ? format.tool_calls : ToolCallFormat::kNone;
  o->reasoning = format.reasoning;
  // A template that opens the reasoning itself ends the prompt with "<think>" (and a newline).
  const size_t end = prompt_text.find_last_not_of(" \n\t\r");
  o->starts_in_reasoning = format.reasoning && end != std::string::npos && end + 1 >= 7 &&
                           prompt_text.compare(end + 1 - 7, 7, "<think>") == 0;
  for (const json& t : tf.tools) o->tool_names.push_back(t["function"]["name"].get<std::string>());
  o->parallel = tf.parallel;
  o->id_seed = id_seed;
  if (tf.choice == ToolChoice::kNamed) {
    o->forced = ChatParserOptions::Forced::kNamed;
    o->forced_name = tf.named;
  } else if (tf.choice == ToolChoice::kRequired) {
    o->forced = ChatParserOptions::Forced::kRequired;
  }
  // Where a grammar fixes the call's shape, its arguments stream as they are generated.
  o->stream_arguments = o->forced != ChatParserOptions::Forced::kNo ||
                        (tf.choice == ToolChoice::kAuto && auto_constrained(format.tool_calls));
  return o;
}

void parse_choice(const ChatParserOptions& options, ChoiceState& c) {
  ChatParserOptions whole = options;
  whole.stream_arguments = false;  // one answer: a call cut off is content, as without streaming
  ChatOutputParser p(whole);
  p.feed(c.text);
  p.finish();
  c.parsed = true;
  c.content = p.content();
  c.reasoning = p.reasoning();
  c.calls = p.calls();
}

json chat_finish_reason(EngineFinish f, bool has_calls) {
  if (has_calls && (f == EngineFinish::kEos || f == EngineFinish::kStop)) return "tool_calls";
  return finish_reason_json(f);
}

json tool_calls_json(const std::vector<ToolCall>& calls, int first_index, bool with_index) {
  json arr = json::array();
  for (size_t i = 0; i < calls.size(); ++i) {
    json c = {{"id", calls[i].id},
              {"type", "function"},
              {"function", {{"name", calls[i].name}, {"arguments", calls[i].arguments}}}};
    if (with_index) c["index"] = first_index + int(i);
    arr.push_back(std::move(c));
  }
  return arr;
}

void stream_parsed_event(const ResponseMeta& meta, const Tokenizer& tok, int index, const EngineOutput& ev,
                         const ChatDelta& d, int& calls_sent, int calls_complete, bool include_usage_field,
                         std::string& out) {
  const bool has_logprobs = meta.want_logprobs && !ev.tokens.empty();
  if (!d.reasoning.empty() || !d.content.empty() || has_logprobs) {
    json delta = json::object();
    if (!d.reasoning.empty()) delta["reasoning_content"] = d.reasoning;
    if (!d.content.empty()) delta["content"] = d.content;
    out += sse_event(chat_chunk(meta, tok, index, &ev, std::move(delta), nullptr, include_usage_field));
  }
  for (const ToolCallPart& p : d.call_parts) {
    // As OpenAI streams a call: the first piece has index, id, type and name with arguments "", the
    // next ones index and an arguments piece (clients concatenate them per index).
    json call = {{"index", p.index}};
    if (!p.id.empty()) {
      call["id"] = p.id;
      call["type"] = "function";
      call["function"] = {{"name", p.name}, {"arguments", p.arguments}};
    } else {
      call["function"] = {{"arguments", p.arguments}};
    }
    json delta = {{"tool_calls", json::array({std::move(call)})}};
    out += sse_event(chat_chunk(meta, tok, index, nullptr, std::move(delta), nullptr, include_usage_field));
    calls_sent = std::max(calls_sent, p.index + 1);
  }
  for (const ToolCall& c : d.calls) {
    if (c.streamed) continue;  // its pieces went out above, as it was generated
    // A call not streamed in pieces goes whole in one chunk: id, name and the complete arguments.
    json delta = {{"tool_calls", tool_calls_json({c}, calls_sent++, true)}};
    out += sse_event(chat_chunk(meta, tok, index, nullptr, std::move(delta), nullptr, include_usage_field));
  }
  if (ev.finish != EngineFinish::kNone) {
    out += sse_event(chat_chunk(meta, tok, index, nullptr, json::object(), chat_finish_reason(ev.finish, calls_complete > 0),
                                include_usage_field));
  }
}

}  // namespace tern::api
