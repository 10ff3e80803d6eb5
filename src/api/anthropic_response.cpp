// Anthropic Messages responses and stream events: see anthropic_response.h.
#include "api/anthropic_response.h"

namespace tern::api {

using json = nlohmann::ordered_json;

std::string anthropic_error_body(const ApiError& e) {
  const char* type = "invalid_request_error";
  switch (e.http_status) {
    case 401: type = "authentication_error"; break;
    case 403: type = "permission_error"; break;
    case 404: type = "not_found_error"; break;
    case 413: type = "request_too_large"; break;
    case 429: type = "rate_limit_error"; break;
    case 503: type = "overloaded_error"; break;
    default:
      if (e.http_status >= 500) type = "api_error";
  }
  std::string message = e.message;
  // Anthropic's body has no `param`: keep the name in the text when the message lacks it.
  if (!e.param.empty() && message.find(e.param) == std::string::npos) message = e.param + ": " + message;
  return dump_json({{"type", "error"}, {"error", {{"type", type}, {"message", message}}}});
}

const char* anthropic_stop_reason(EngineFinish f, bool has_calls, const std::string& stop_string) {
  if (f == EngineFinish::kLength) return "max_tokens";
  if (has_calls) return "tool_use";
  if (f == EngineFinish::kStop && !stop_string.empty()) return "stop_sequence";
  return "end_turn";
}

json anthropic_usage(const ChoiceState& c) {
  return {{"input_tokens", c.prompt_tokens - c.cached_prompt_tokens},
          {"cache_creation_input_tokens", 0},
          {"cache_read_input_tokens", c.cached_prompt_tokens},
          {"output_tokens", c.completion_tokens}};
}

namespace {

json tool_use_block(const ToolCall& call) {
  json input = json::parse(call.arguments, nullptr, false);
  if (input.is_discarded() || !input.is_object()) input = json::object();  // the parser only emits objects
  return {{"type", "tool_use"}, {"id", call.id}, {"name", call.name}, {"input", input}};
}

json stop_sequence_json(const ChoiceState& c) {
  return c.finish == EngineFinish::kStop && !c.stop_string.empty() ? json(c.stop_string) : json(nullptr);
}

}  // namespace

json anthropic_message(const std::string& id, const std::string& model, const ChoiceState& c) {
  json content = json::array();
  const std::string& text = c.parsed ? c.content : c.text;
  if (c.parsed && !c.reasoning.empty()) {
    content.push_back({{"type", "thinking"}, {"thinking", c.reasoning}, {"signature", ""}});
  }
  if (!text.empty() || (c.parsed ? c.calls.empty() : true)) content.push_back({{"type", "text"}, {"text", text}});
  if (c.parsed) {
    for (const ToolCall& call : c.calls) content.push_back(tool_use_block(call));
  }
  const bool calls = c.parsed && !c.calls.empty();
  return {{"id", id},
          {"type", "message"},
          {"role", "assistant"},
          {"model", model},
          {"content", content},
          {"stop_reason", anthropic_stop_reason(c.finish, calls, c.stop_string)},
          {"stop_sequence", stop_sequence_json(c)},
          {"usage", anthropic_usage(c)}};
}

std::string anthropic_sse(const char* event, const json& data) {
  return std::string("event: ") + event + "\ndata: " + dump_json(data) + "\n\n";
}

void AnthropicStream::start(const ChoiceState& c, std::string& out) {
  if (started_) return;
  started_ = true;
  json usage = anthropic_usage(c);
  usage["output_tokens"] = 0;
  json message = {{"id", id_},           {"type", "message"},        {"role", "assistant"},
                  {"model", model_},     {"content", json::array()}, {"stop_reason", nullptr},
                  {"stop_sequence", nullptr}, {"usage", usage}};
  out += anthropic_sse("message_start", {{"type", "message_start"}, {"message", message}});
  out += anthropic_sse("ping", {{"type", "ping"}});
}

void AnthropicStream::open(Block b, std::string& out) {
  if (open_ == b) return;
  close(out);
  open_ = b;
  ++index_;
  const json block = b == Block::kThinking ? json{{"type", "thinking"}, {"thinking", ""}, {"signature", ""}}
                                           : json{{"type", "text"}, {"text", ""}};
  out += anthropic_sse("content_block_start", {{"type", "content_block_start"}, {"index", index_}, {"content_block", block}});
}

void AnthropicStream::close(std::string& out) {
  if (open_ == Block::kNone) return;
  if (open_ == Block::kThinking) {
    // Anthropic closes a thinking block with its signature; tern signs nothing, so it is empty.
    out += anthropic_sse("content_block_delta", {{"type", "content_block_delta"}, {"index", index_},
                                                 {"delta", {{"type", "signature_delta"}, {"signature", ""}}}});
  }
  out += anthropic_sse("content_block_stop", {{"type", "content_block_stop"}, {"index", index_}});
  open_ = Block::kNone;
}

void AnthropicStream::delta(const ChatDelta& d, std::string& out) {
  if (!d.reasoning.empty()) {
    open(Block::kThinking, out);
    out += anthropic_sse("content_block_delta", {{"type", "content_block_delta"}, {"index", index_},
                                                 {"delta", {{"type", "thinking_delta"}, {"thinking", d.reasoning}}}});
  }
  if (!d.content.empty()) {
    open(Block::kText, out);
    out += anthropic_sse("content_block_delta", {{"type", "content_block_delta"}, {"index", index_},
                                                 {"delta", {{"type", "text_delta"}, {"text", d.content}}}});
  }
  for (const ToolCall& call : d.calls) {
    close(out);
    has_calls_ = true;
    ++index_;
    json block = {{"type", "tool_use"}, {"id", call.id}, {"name", call.name}, {"input", json::object()}};
    out += anthropic_sse("content_block_start", {{"type", "content_block_start"}, {"index", index_}, {"content_block", block}});
    const std::string args = tool_use_block(call)["input"].dump();
    out += anthropic_sse("content_block_delta", {{"type", "content_block_delta"}, {"index", index_},
                                                 {"delta", {{"type", "input_json_delta"}, {"partial_json", args}}}});
    out += anthropic_sse("content_block_stop", {{"type", "content_block_stop"}, {"index", index_}});
  }
}

void AnthropicStream::finish(const ChoiceState& c, std::string& out) {
  start(c, out);
  if (index_ < 0) open(Block::kText, out);  // a message has at least one block, even an empty text
  close(out);
  json delta = {{"stop_reason", anthropic_stop_reason(c.finish, has_calls_, c.stop_string)},
                {"stop_sequence", stop_sequence_json(c)}};
  out += anthropic_sse("message_delta", {{"type", "message_delta"}, {"delta", delta}, {"usage", anthropic_usage(c)}});
  out += anthropic_sse("message_stop", {{"type", "message_stop"}});
}

void AnthropicStream::error(const ApiError& e, std::string& out) {
  out += "event: error\ndata: " + anthropic_error_body(e) + "\n\n";
}

}  // namespace tern::api
