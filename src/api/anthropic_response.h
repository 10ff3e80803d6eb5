// Anthropic Messages response bodies: the whole message, the SSE events of a stream (message_start, ping,
// content_block_start / _delta / _stop per block, message_delta, message_stop; an `error` event when the
// generation fails), and Anthropic's error body. A chat reply parsed into reasoning / content / tool calls
// (chat_output.h) becomes thinking, text and tool_use blocks in that order.
#pragma once

#include <cstdint>
#include <string>

#include <nlohmann/json.hpp>

#include "api/openai_request.h"
#include "api/openai_response.h"
#include "text/tool_calls/chat_output_parser.h"

namespace tern::api {

// {"type": "error", "error": {"type": "invalid_request_error" | "authentication_error" | ..., "message"}}:
// the type follows the HTTP status as Anthropic's error table gives it; the message names the parameter.
std::string anthropic_error_body(const ApiError& e);

// end_turn (EOS, or a completed grammar), stop_sequence, max_tokens, or tool_use.
const char* anthropic_stop_reason(EngineFinish f, bool has_calls, const std::string& stop_string);

// {input_tokens, cache_read_input_tokens, cache_creation_input_tokens, output_tokens}: input_tokens counts
// the prompt tokens not read from the prefix cache, as Anthropic counts uncached input.
nlohmann::ordered_json anthropic_usage(const ChoiceState& c);

// The whole message of a finished choice (its parsed fields when c.parsed, else its text).
nlohmann::ordered_json anthropic_message(const std::string& id, const std::string& model, const ChoiceState& c);

// "event: <name>\ndata: <json>\n\n"
std::string anthropic_sse(const char* event, const nlohmann::ordered_json& data);

// One streamed message: which block is open, how many there were.
class AnthropicStream {
 public:
  AnthropicStream(std::string id, std::string model) : id_(std::move(id)), model_(std::move(model)) {}
  // message_start (usage so far: the prompt) and a ping; once, before any delta.
  void start(const ChoiceState& c, std::string& out);
  bool started() const { return started_; }
  // Thinking and text deltas go to the open block of their kind (opening it, closing the other); each tool
  // call is a whole tool_use block (its arguments in one input_json_delta).
  void delta(const ChatDelta& d, std::string& out);
  // Closes the open block; message_delta with the stop reason and output tokens; message_stop.
  void finish(const ChoiceState& c, std::string& out);
  // An `error` event (the stream then ends).
  void error(const ApiError& e, std::string& out);

 private:
  enum class Block { kNone, kThinking, kText };
  void open(Block b, std::string& out);
  void close(std::string& out);

  std::string id_, model_;
  bool started_ = false;
  bool has_calls_ = false;
  Block open_ = Block::kNone;
  int index_ = -1;  // the current (or last) block's index
};

}  // namespace tern::api
