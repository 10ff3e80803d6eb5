#include "text/tool_calls/chat_output_parser.h"

#include <algorithm>

#include <nlohmann/json.hpp>

#include "formats/json_util.h"

namespace tern {
namespace {

using json = nlohmann::ordered_json;  // arguments keep the order the model wrote them in

namespace {

// Model output parsed as JSON, or discarded when it nests deeper than any call's arguments should (256):
// dump() recurses, and a reply of 100,000 '[' tokens must stay content, not overflow the stack.
json parse_bounded(std::string_view text) {
  if (json_nesting_depth(text) > 256) return json(json::value_t::discarded);
  return json::parse(text, nullptr, /*allow_exceptions=*/false);
}

}  // namespace

constexpr std::string_view kThinkOpen = "<think>";
constexpr std::string_view kThinkClose = "</think>";
constexpr std::string_view kHermesOpen = "<tool_call>";
constexpr std::string_view kHermesClose = "</tool_call>";
constexpr std::string_view kMistralOpen = "[TOOL_CALLS]";
constexpr std::string_view kMistralArgs = "[ARGS]";
constexpr std::string_view kPythonTag = "<|python_tag|>";

bool is_ws(char c) { return c == ' ' || c == '\n' || c == '\t' || c == '\r'; }

size_t skip_ws(std::string_view s, size_t i = 0) {
  while (i < s.size() && is_ws(s[i])) ++i;
  return i;
}

// Length of the longest proper prefix of `marker` that `s` ends with (text to hold back).
size_t partial_suffix(std::string_view s, std::string_view marker) {
  for (size_t k = std::min(s.size(), marker.size() - 1); k > 0; --k) {
    if (s.substr(s.size() - k) == marker.substr(0, k)) return k;
  }
  return 0;
}

}  // namespace

size_t json_value_end(std::string_view s) {
  if (s.empty() || (s[0] != '{' && s[0] != '[')) return std::string_view::npos;
  int depth = 0;
  bool in_string = false, escape = false;
  for (size_t i = 0; i < s.size(); ++i) {
    const char c = s[i];
    if (in_string) {
      if (escape) {
        escape = false;
      } else if (c == '\\') {
        escape = true;
      } else if (c == '"') {
        in_string = false;
      }
    } else if (c == '"') {
      in_string = true;
    } else if (c == '{' || c == '[') {
      ++depth;
    } else if (c == '}' || c == ']') {
      if (--depth == 0) return i + 1;
    }
  }
  return std::string_view::npos;
}

ChatOutputParser::ChatOutputParser(ChatParserOptions options) : opt_(std::move(options)) {
  if (opt_.reasoning && opt_.starts_in_reasoning) state_ = State::kReasoning;
}

ChatDelta ChatOutputParser::feed(std::string_view text) {
  buf_.append(text);
  ChatDelta d;
  if (opt_.forced == ChatParserOptions::Forced::kNo) {
    run(false, d);
  } else if (opt_.stream_arguments) {
    stream_forced(d);
  }
  return d;
}

ChatDelta ChatOutputParser::finish() {
  ChatDelta d;
  if (opt_.forced == ChatParserOptions::Forced::kNo) {
    run(true, d);
  } else {
    finish_forced(d);
  }
  return d;
}

void ChatOutputParser::finish_forced(ChatDelta& d) {
  if (opt_.stream_arguments) stream_forced(d);
  std::vector<ToolCall> got;
  bool ok = false;
  const json v = parse_bounded(buf_);
  if (opt_.forced == ChatParserOptions::Forced::kNamed) {
    ok = v.is_object() && add_call(json{{"name", opt_.forced_name}, {"arguments", v}}.dump(), got);
  } else {
    ok = v.is_array() && !v.empty();
    for (size_t i = 0; ok && i < v.size(); ++i) ok = add_call(v[i].dump(), got);
    if (ok && !opt_.parallel) got.resize(1);
  }
  if (!ok) {  // cut off by max_tokens (the grammar admits nothing else): the text is the content
    if (next_index_ == 0) emit_content(buf_, d);  // unless calls were shown as they began
    buf_.clear();
    return;
  }
  for (ToolCall& c : got) {
    c.streamed = int(calls_.size()) < next_index_;
    c.id = make_tool_call_id(opt_.format, opt_.id_seed, int(calls_.size()));
    calls_.push_back(c);
    d.calls.push_back(std::move(c));
  }
  buf_.clear();
}

void ChatOutputParser::run(bool final, ChatDelta& d) {
  // Each step consumes text or changes state; it returns false when it must wait for more text.
  for (;;) {
    bool progressed = false;
    switch (state_) {
      case State::kStart:
        progressed = step_start(final);
        break;
      case State::kReasoning:
        progressed = step_reasoning(final, d);
        break;
      case State::kContent:
        progressed = step_content(final, d);
        break;
      case State::kCall:
        progressed = step_call(final, d);
        break;
      case State::kLlamaNext:
        progressed = step_llama_next(final);
        break;
    }
    if (!progressed) return;
  }
}

bool ChatOutputParser::step_start(bool final) {
  if (!opt_.reasoning) {
    state_ = State::kContent;
    return true;
  }
  const size_t i = skip_ws(buf_);
  std::string_view rest = std::string_view(buf_).substr(i);
  if (rest.substr(0, kThinkOpen.size()) == kThinkOpen) {
    buf_.erase(0, i + kThinkOpen.size());
    state_ = State::kReasoning;
    return true;
  }
  if (!final && kThinkOpen.substr(0, rest.size()) == rest) return false;  // maybe "<thi"
  state_ = State::kContent;
  return true;
}

bool ChatOutputParser::step_reasoning(bool final, ChatDelta& d) {
  const size_t close = buf_.find(kThinkClose);
  const size_t avail = close != std::string::npos ? close
                       : final                    ? buf_.size()
                                                  : buf_.size() - partial_suffix(buf_, kThinkClose);
  std::string_view take(buf_.data(), avail);
  size_t consumed = avail;
  if (reasoning_.empty()) take.remove_prefix(skip_ws(take));  // "<think>\n" opens with a newline
  // Whitespace before </think> is dropped, so it is held back until it is known not to end the reasoning.
  size_t keep = take.size();
  while (keep > 0 && is_ws(take[keep - 1])) --keep;
  if (!final || close != std::string::npos) {
    if (close == std::string::npos) consumed -= take.size() - keep;
    take = take.substr(0, keep);
  }
  reasoning_.append(take);
  d.reasoning.append(take);
  if (close != std::string::npos) {
    buf_.erase(0, close + kThinkClose.size());
    state_ = State::kContent;
    skip_ws_ = true;  // "</think>\n\n" before the answer
    return true;
  }
  buf_.erase(0, consumed);
  return false;
}

bool ChatOutputParser::calls_allowed() const {
  return opt_.format != ToolCallFormat::kNone && !failed_ && (opt_.parallel || calls_.empty());
}

void ChatOutputParser::emit_content(std::string_view s, ChatDelta& d) {
  if (skip_ws_) {
    s = s.substr(skip_ws(s));
    if (s.empty()) return;
    skip_ws_ = false;
  }
  if (s.find_first_not_of(" \n\t\r") != std::string_view::npos) content_started_ = true;
  content_.append(s);
  d.content.append(s);
}

bool ChatOutputParser::step_content(bool final, ChatDelta& d) {
  if (buf_.empty()) return false;
  if (!calls_allowed()) {
    emit_content(buf_, d);
    buf_.clear();
    return false;
  }
  std::string_view b = buf_;
  // Llama 3.1: a reply that is a JSON object from its first non-space character is a call (or calls).
  if (opt_.format == ToolCallFormat::kLlama3 && !content_started_) {
    const size_t i = skip_ws(b);
    if (i == b.size() && !final) return false;  // only whitespace yet
    if (i < b.size() && b[i] == '{') {
      buf_.erase(0, i);
      call_raw_.clear();
      state_ = State::kCall;
      return true;
    }
  }
  std::string_view marker = opt_.format == ToolCallFormat::kHermes    ? kHermesOpen
                            : opt_.format == ToolCallFormat::kMistral ? kMistralOpen
                                                                      : kPythonTag;
  const size_t at = b.find(marker);
  if (at != std::string_view::npos) {
    emit_content(b.substr(0, at), d);
    call_raw_ = std::string(marker);
    buf_.erase(0, at + marker.size());
    call_base_ = next_index_;
    state_ = State::kCall;
    return true;
  }
  const size_t hold = final ? 0 : partial_suffix(b, marker);
  emit_content(b.substr(0, b.size() - hold), d);
  buf_.erase(0, b.size() - hold);
  return false;
}

bool ChatOutputParser::add_call(const std::string& text, std::vector<ToolCall>& out) {
  json v = parse_bounded(text);
  if (v.is_discarded() || !v.is_object()) return false;
  auto name = v.find("name");
  if (name == v.end() || !name->is_string() || name->get<std::string>().empty()) return false;
  const std::string n = name->get<std::string>();
  if (!opt_.tool_names.empty() && std::find(opt_.tool_names.begin(), opt_.tool_names.end(), n) == opt_.tool_names.end())
    return false;
  json args = json::object();
  auto a = v.find("arguments");
  if (a == v.end()) a = v.find("parameters");
  if (a != v.end() && !a->is_null()) {
    args = *a;
    if (args.is_string()) args = parse_bounded(a->get<std::string>());  // arguments as a JSON string
    if (args.is_discarded() || !args.is_object()) return false;
  }
  ToolCall c;
  c.name = n;
  c.arguments = args.dump(-1, ' ', false, json::error_handler_t::replace);
  out.push_back(std::move(c));
  return true;
}

void ChatOutputParser::fail_call(ChatDelta& d, size_t n) {
  // Not a call after all: every character the model wrote stays visible, as content; text after the
  // failed call is read as content again. Calls are off from here, so the same text is not re-read.
  // A call whose pieces went out already stays the partial call the client saw.
  n = std::min(n, buf_.size());
  skip_ws_ = false;
  if (part_index_ < 0) emit_content(call_raw_ + buf_.substr(0, n), d);
  end_part();
  call_raw_.clear();
  buf_.erase(0, n);
  state_ = State::kContent;
  failed_ = true;
}

bool ChatOutputParser::step_call(bool final, ChatDelta& d) {
  // Constrained Hermes / Llama 3.1 calls are name-first objects: their arguments stream as they come.
  // Constrained Mistral calls: a JSON array of such objects (v3 / v7), or name[ARGS]{...} (v11).
  if (opt_.stream_arguments) {
    if (opt_.format != ToolCallFormat::kMistral) stream_scanned(scan_call(buf_), buf_, d);
    else stream_mistral(d);
  }
  std::vector<ToolCall> got;
  size_t used = 0;  // bytes of buf_ the complete call(s) took
  std::string name;  // Mistral v11: name[ARGS]{...}
  if (opt_.format == ToolCallFormat::kHermes) {
    const size_t close = buf_.find(kHermesClose);
    if (close == std::string::npos) {
      if (final) fail_call(d);
      return false;
    }
    if (!add_call(buf_.substr(0, close), got)) {
      fail_call(d, close + kHermesClose.size());
      return true;
    }
    used = close + kHermesClose.size();
  } else {
    const size_t i = skip_ws(buf_);
    std::string_view b = std::string_view(buf_).substr(i);
    if (b.empty()) {
      if (final) fail_call(d);
      return false;
    }
    if (opt_.format == ToolCallFormat::kMistral && b[0] != '[') {
      const size_t args = b.find(kMistralArgs);
      if (args == std::string_view::npos) {
        if (final || b.find_first_of("{}\n") != std::string_view::npos) fail_call(d);
        return false;
      }
      name = std::string(b.substr(0, args));
      b = b.substr(args + kMistralArgs.size());
      used = i + args + kMistralArgs.size();
      if (b.empty()) {
        if (final) fail_call(d);
        return false;
      }
    } else {
      used = i;
    }
    if (b[0] != '{' && b[0] != '[') {
      fail_call(d);
      return true;
    }
    const size_t end = json_value_end(b);
    if (end == std::string_view::npos) {
      if (final) fail_call(d);
      return false;
    }
    used += end;
    const std::string body(b.substr(0, end));
    bool ok = true;
    if (!name.empty()) {
      ok = add_call(json{{"name", name}, {"arguments", parse_bounded(body)}}.dump(-1, ' ', false,
                                                                                             json::error_handler_t::replace),
                    got);
    } else if (body[0] == '[') {
      json arr = parse_bounded(body);
      ok = arr.is_array() && !arr.empty();
      for (size_t k = 0; ok && k < arr.size(); ++k) ok = add_call(arr[k].dump(), got);
    } else {
      ok = add_call(body, got);
    }
    if (!ok) {
      fail_call(d, used);
      return true;
    }
  }
  if (!opt_.parallel && calls_.size() + got.size() > 1) {
    // One call was asked for (parallel_tool_calls false): the first of a Mistral array is returned.
    got.resize(1);
  }
  // A streamed Mistral array: element k is call base + k, whether its pieces went out already or not.
  const bool array = opt_.stream_arguments && opt_.format == ToolCallFormat::kMistral && name.empty();
  for (size_t k = 0; k < got.size(); ++k) {
    ToolCall& c = got[k];
    if (array) {
      const int index = call_base_ + int(k);
      c.id = make_tool_call_id(opt_.format, opt_.id_seed, index);
      c.streamed = index < next_index_;
    } else if (part_index_ >= 0) {  // the call streamed above: the same id
      c.id = make_tool_call_id(opt_.format, opt_.id_seed, part_index_);
      c.streamed = true;
      end_part();
    } else {
      c.id = make_tool_call_id(opt_.format, opt_.id_seed, opt_.stream_arguments ? next_index_++ : int(calls_.size()));
    }
    calls_.push_back(c);
    d.calls.push_back(std::move(c));
  }
  if (array) {
    next_index_ = std::max(next_index_, call_base_ + int(got.size()));
    end_part();
  }
  buf_.erase(0, used);
  call_raw_.clear();
  skip_ws_ = true;
  // Llama joins several calls with ';' (step_llama_next); Mistral repeats [TOOL_CALLS], Hermes <tool_call>.
  state_ = opt_.format == ToolCallFormat::kLlama3 && calls_allowed() ? State::kLlamaNext : State::kContent;
  return true;
}

bool ChatOutputParser::step_llama_next(bool final) {
  const size_t j = skip_ws(buf_);
  if (j == buf_.size() && !final) return false;  // a ';' may follow
  if (j < buf_.size() && buf_[j] == ';') {
    buf_.erase(0, j + 1);
    state_ = State::kCall;
  } else {
    state_ = State::kContent;
  }
  return true;
}

void ChatOutputParser::stream_scanned(const CallScan& c, std::string_view s, ChatDelta& d) {
  if (c.bad || !c.has_name || c.args_begin == CallScan::npos) return;
  if (part_index_ < 0) {  // the first piece: id and name
    part_index_ = next_index_++;
    d.call_parts.push_back({part_index_, make_tool_call_id(opt_.format, opt_.id_seed, part_index_), c.name, ""});
  }
  const size_t stop = c.args_end != CallScan::npos ? c.args_end : s.size();
  const std::string_view args = s.substr(c.args_begin, stop - c.args_begin);
  const size_t ready = c.args_end != CallScan::npos ? args.size() : utf8_complete_prefix(args);
  if (ready > args_sent_) {
    d.call_parts.push_back({part_index_, "", "", std::string(args.substr(args_sent_, ready - args_sent_))});
    args_sent_ = ready;
  }
}

void ChatOutputParser::stream_forced(ChatDelta& d) {
  const std::string_view b = buf_;
  size_t i = skip_ws(b);
  if (opt_.forced == ChatParserOptions::Forced::kNamed) {
    // The whole reply is the named function's arguments object.
    if (i == b.size() || b[i] != '{' || (part_index_ < 0 && next_index_ > 0)) return;
    CallScan c;
    c.has_name = true;
    c.name = opt_.forced_name;
    c.args_begin = i;
    const size_t n = json_value_end(b.substr(i));
    if (n != std::string_view::npos) c.args_end = i + n;
    stream_scanned(c, b, d);
    if (c.args_end != CallScan::npos) end_part();
    return;
  }
  // "required": [{"name": ..., "parameters": {...}}, ...], element k is call k.
  stream_array(b, i, 0, d);
}

void ChatOutputParser::stream_array(std::string_view b, size_t i, int base, ChatDelta& d) {
  if (i == b.size() || b[i] != '[') return;
  ++i;
  for (int k = base;; ++k) {
    i = skip_ws(b, i);
    if (i == b.size() || b[i] != '{') return;
    const CallScan c = scan_call(b.substr(i));
    if (c.bad) return;
    if (k == part_index_ || (part_index_ < 0 && k == next_index_)) {
      stream_scanned(c, b.substr(i), d);
      if (c.end != CallScan::npos && k == part_index_) end_part();
    }
    if (c.end == CallScan::npos) return;
    i = skip_ws(b, i + c.end);
    if (i == b.size() || b[i] != ',') return;
    ++i;
  }
}

void ChatOutputParser::stream_mistral(ChatDelta& d) {
  const std::string_view b = buf_;
  const size_t i = skip_ws(b);
  if (i == b.size()) return;
  if (b[i] == '[') return stream_array(b, i, call_base_, d);  // [{"name": ..., "arguments": {...}}, ...]
  // v11: name[ARGS]{...}, one call.
  const size_t args = b.find(kMistralArgs, i);
  if (args == std::string_view::npos) return;
  CallScan c;
  c.has_name = true;
  c.name = std::string(b.substr(i, args - i));
  const size_t j = args + kMistralArgs.size();
  if (j == b.size() || b[j] != '{') return;
  c.args_begin = j;
  const size_t n = json_value_end(b.substr(j));
  if (n != std::string_view::npos) c.args_end = j + n;
  stream_scanned(c, b, d);
}

}  // namespace tern
