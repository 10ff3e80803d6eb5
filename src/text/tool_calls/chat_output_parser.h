// Splits a chat model's reply into reasoning (<think>...</think>), content and tool calls, as text
// arrives (streaming) or all at once. Text that could still become a marker is held back until it
// can be told apart, so a stream never shows half a "<tool_call>" as content. A call that does not parse
// (bad JSON, no name, a name that is not one of the request's tools, cut off by max_tokens) is never
// returned as a call: its raw text, markers included, goes to content.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "text/tool_calls/call_scan.h"
#include "text/tool_calls/tool_call_format.h"

namespace tern {

struct ToolCall {
  std::string id;
  std::string name;
  std::string arguments;  // a JSON object as text (OpenAI's `function.arguments`)
  bool streamed = false;  // its pieces already went out as ChatDelta::call_parts
};

// A piece of a call being generated (ChatParserOptions::stream_arguments): the first piece of call
// `index` has its id and name (arguments ""), the next ones append to its arguments text. The
// pieces of one call concatenate to the arguments exactly as the model wrote them.
struct ToolCallPart {
  int index = 0;
  std::string id, name;  // first piece only
  std::string arguments;
};

// What one feed() / finish() adds.
struct ChatDelta {
  std::string reasoning;
  std::string content;
  std::vector<ToolCall> calls;  // complete calls, in order
  std::vector<ToolCallPart> call_parts;  // stream_arguments: calls as they are generated
  bool empty() const { return reasoning.empty() && content.empty() && calls.empty() && call_parts.empty(); }
};

struct ChatParserOptions {
  ToolCallFormat format = ToolCallFormat::kNone;  // kNone: no calls are recognised
  bool reasoning = false;            // a reply opening with <think> has reasoning
  bool starts_in_reasoning = false;  // the prompt already opened <think> (DeepSeek-R1 style templates)
  std::vector<std::string> tool_names;  // a call must name one of these (empty: any name)
  bool parallel = true;              // false: calls after the first stay content
  uint64_t id_seed = 0;              // tool call ids (make_tool_call_id)
  // Calls generated under a JSON Schema instead of the template's format (tool_choice "required" or a
  // named function, as vLLM does it, for any model): the whole reply is JSON, read when it ends.
  //   kNamed     the arguments object of `forced_name`
  //   kRequired  [{"name": ..., "parameters": {...}}, ...]
  enum class Forced { kNo, kNamed, kRequired };
  Forced forced = Forced::kNo;
  std::string forced_name;
  // The call's shape is guaranteed by a grammar (forced calls; "auto" in the Hermes, Llama 3.1 and
  // Mistral formats): name and arguments go out as call_parts while they are generated. A call cut off after
  // its first piece stays a partial call (it is not turned into content: the client saw it begin).
  bool stream_arguments = false;
};

class ChatOutputParser {
 public:
  explicit ChatOutputParser(ChatParserOptions options);

  ChatDelta feed(std::string_view text);
  // The reply ended: whatever is held back is resolved (an unterminated call becomes content).
  ChatDelta finish();

  // Totals so far.
  const std::string& reasoning() const { return reasoning_; }
  const std::string& content() const { return content_; }
  const std::vector<ToolCall>& calls() const { return calls_; }

 private:
  enum class State { kStart, kReasoning, kContent, kCall, kLlamaNext };
  void run(bool final, ChatDelta& d);
  bool step_start(bool final);
  bool step_reasoning(bool final, ChatDelta& d);
  bool step_content(bool final, ChatDelta& d);
  bool step_call(bool final, ChatDelta& d);
  bool step_llama_next(bool final);
  void finish_forced(ChatDelta& d);
  // Parses one call object ({"name", "arguments"|"parameters"}); false if it is not a valid call.
  bool add_call(const std::string& json_text, std::vector<ToolCall>& out);
  bool calls_allowed() const;
  void emit_content(std::string_view s, ChatDelta& d);
  void fail_call(ChatDelta& d, size_t n = std::string::npos);  // the marker + n bytes of call text -> content
  // stream_arguments: the call object at buf_[from..] as far as it goes -> call_parts; the forced forms.
  void stream_scanned(const CallScan& c, std::string_view s, ChatDelta& d);
  void stream_forced(ChatDelta& d);
  // stream_arguments: the array of call objects at b[i] ('['), element k being call `base` + k; Mistral's forms.
  void stream_array(std::string_view b, size_t i, int base, ChatDelta& d);
  void stream_mistral(ChatDelta& d);
  void end_part() { part_index_ = -1, args_sent_ = 0; }

  ChatParserOptions opt_;
  State state_ = State::kStart;
  std::string buf_;       // text not yet classified
  std::string call_raw_;  // kCall: the marker and the call text consumed so far
  bool content_started_ = false;  // non-whitespace content went out (Llama's bare JSON must come first)
  bool skip_ws_ = false;          // drop whitespace before the next content (after </think> or a call)
  bool failed_ = false;           // a call did not parse: the rest of the reply is content
  std::string reasoning_, content_;
  std::vector<ToolCall> calls_;
  // stream_arguments: the call being streamed (-1: none; its id is make_tool_call_id of it), the bytes
  // of its arguments sent, and the index the next call gets.
  int part_index_ = -1;
  size_t args_sent_ = 0;
  int next_index_ = 0;
  int call_base_ = 0;  // the index of the first call after the current [TOOL_CALLS] (Mistral arrays)
};

// The index just past the JSON object or array that starts at s[0] ('{' or '['), or npos while it is
// incomplete (brackets counted outside strings).
size_t json_value_end(std::string_view s);

}  // namespace tern
