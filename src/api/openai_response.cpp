// OpenAI response JSON: see openai_response.h.
#include "api/openai_response.h"

#include "api/chat_output.h"
#include "text/tokenizer/tokenizer.h"

namespace tern::api {
namespace {

using json = nlohmann::ordered_json;

json bytes_of(const std::string& s) {
  json b = json::array();
  for (unsigned char c : s) b.push_back(int(c));
  return b;
}

// Chat form: {"content": [{"token", "logprob", "bytes", "top_logprobs": [...]}]}
json chat_logprobs(const Tokenizer& tok, const std::vector<int32_t>& tokens, const std::vector<float>& lps,
                   const std::vector<std::vector<TokenLogprob>>& top) {
  json content = json::array();
  for (size_t i = 0; i < tokens.size() && i < lps.size(); ++i) {
    json alts = json::array();
    if (i < top.size()) {
      for (const auto& t : top[i]) {
        alts.push_back({{"token", tok.decode({t.id})}, {"logprob", t.logprob}, {"bytes", bytes_of(tok.decode_bytes({t.id}))}});
      }
    }
    content.push_back({{"token", tok.decode({tokens[i]})},
                       {"logprob", lps[i]},
                       {"bytes", bytes_of(tok.decode_bytes({tokens[i]}))},
                       {"top_logprobs", alts}});
  }
  return {{"content", content}};
}

// Completions form: {"tokens", "token_logprobs", "top_logprobs": [{token: logprob}], "text_offset"}
json completion_logprobs(const Tokenizer& tok, const std::vector<int32_t>& tokens, const std::vector<float>& lps,
                         const std::vector<std::vector<TokenLogprob>>& top, size_t offset0) {
  json strs = json::array(), values = json::array(), tops = json::array(), offsets = json::array();
  size_t offset = offset0;
  for (size_t i = 0; i < tokens.size() && i < lps.size(); ++i) {
    const std::string s = tok.decode({tokens[i]});
    strs.push_back(s);
    values.push_back(lps[i]);
    json alts = json::object();
    if (i < top.size()) {
      for (const auto& t : top[i]) alts[tok.decode({t.id})] = t.logprob;
    }
    tops.push_back(alts);
    offsets.push_back(offset);
    offset += s.size();
  }
  return {{"tokens", strs}, {"token_logprobs", values}, {"top_logprobs", tops}, {"text_offset", offsets}};
}

json base(const ResponseMeta& m, const char* object) {
  return {{"id", m.id}, {"object", object}, {"created", m.created}, {"model", m.model}};
}

}  // namespace

void ChoiceState::add(const EngineOutput& out) {
  text += out.text;
  tokens.insert(tokens.end(), out.tokens.begin(), out.tokens.end());
  logprobs.insert(logprobs.end(), out.logprobs.begin(), out.logprobs.end());
  top.insert(top.end(), out.top.begin(), out.top.end());
  if (out.finish != EngineFinish::kNone) {
    finish = out.finish;
    error = out.error;
    stop_string = out.stop_string;
  }
  prompt_tokens = out.prompt_tokens;
  cached_prompt_tokens = out.cached_prompt_tokens;
  completion_tokens = out.completion_tokens;
}

json finish_reason_json(EngineFinish f) {
  switch (f) {
    case EngineFinish::kLength:
      return "length";
    case EngineFinish::kEos:
    case EngineFinish::kStop:
      return "stop";
    default:
      return nullptr;
  }
}

json usage_json(const std::vector<ChoiceState>& choices, int n_per_prompt) {
  // Prompt tokens count once per prompt (n choices share it), as OpenAI counts them.
  int64_t prompt = 0, cached = 0, completion = 0;
  for (size_t i = 0; i < choices.size(); ++i) {
    if (n_per_prompt <= 0 || i % size_t(n_per_prompt) == 0) {
      prompt += choices[i].prompt_tokens;
      cached += choices[i].cached_prompt_tokens;
    }
    completion += choices[i].completion_tokens;
  }
  return {{"prompt_tokens", prompt},
          {"completion_tokens", completion},
          {"total_tokens", prompt + completion},
          {"prompt_tokens_details", {{"cached_tokens", cached}}}};
}

json full_response(const ResponseMeta& meta, const Tokenizer& tok, const std::vector<ChoiceState>& choices,
                   const std::vector<std::string>& echo_prefix, int n_per_prompt) {
  const bool chat = meta.endpoint == Endpoint::kChat;
  json out = base(meta, chat ? "chat.completion" : "text_completion");
  json arr = json::array();
  for (size_t i = 0; i < choices.size(); ++i) {
    const ChoiceState& c = choices[i];
    json lp = nullptr;
    const std::string prefix = i < echo_prefix.size() ? echo_prefix[i] : "";
    if (meta.want_logprobs) {
      lp = chat ? chat_logprobs(tok, c.tokens, c.logprobs, c.top)
                : completion_logprobs(tok, c.tokens, c.logprobs, c.top, prefix.size());
    }
    json choice = {{"index", i}, {"logprobs", lp}, {"finish_reason", finish_reason_json(c.finish)}};
    if (chat && c.parsed) {
      // Whitespace around calls is no answer: content is null then, as OpenAI sends it.
      const bool blank = c.content.find_first_not_of(" \n\t\r") == std::string::npos;
      json msg = {{"role", "assistant"}, {"content", blank && !c.calls.empty() ? json(nullptr) : json(c.content)}};
      if (!c.reasoning.empty()) msg["reasoning_content"] = c.reasoning;
      if (!c.calls.empty()) msg["tool_calls"] = tool_calls_json(c.calls, 0, false);
      choice["message"] = std::move(msg);
      choice["finish_reason"] = chat_finish_reason(c.finish, !c.calls.empty());
    } else if (chat) {
      choice["message"] = {{"role", "assistant"}, {"content", c.text}};
    } else {
      choice["text"] = prefix + c.text;
    }
    arr.push_back(std::move(choice));
  }
  out["choices"] = std::move(arr);
  out["usage"] = usage_json(choices, n_per_prompt);
  return out;
}

json stream_chunk(const ResponseMeta& meta, const Tokenizer& tok, int index, const EngineOutput& ev,
                  const std::string& text, bool first, bool include_usage_field) {
  const bool chat = meta.endpoint == Endpoint::kChat;
  json out = base(meta, chat ? "chat.completion.chunk" : "text_completion");
  json lp = nullptr;
  if (meta.want_logprobs && !ev.tokens.empty()) {
    lp = chat ? chat_logprobs(tok, ev.tokens, ev.logprobs, ev.top) : completion_logprobs(tok, ev.tokens, ev.logprobs, ev.top, 0);
  }
  json choice = {{"index", index}, {"logprobs", lp}, {"finish_reason", finish_reason_json(ev.finish)}};
  if (chat) {
    json delta = json::object();
    if (first) delta["role"] = "assistant";
    if (!text.empty() || first) delta["content"] = text;
    choice["delta"] = std::move(delta);
  } else {
    choice["text"] = text;
  }
  out["choices"] = json::array({std::move(choice)});
  if (include_usage_field) out["usage"] = nullptr;
  return out;
}

json chat_chunk(const ResponseMeta& meta, const Tokenizer& tok, int index, const EngineOutput* lp, json delta,
                json finish_reason, bool include_usage_field) {
  json out = base(meta, "chat.completion.chunk");
  json lpj = nullptr;
  if (meta.want_logprobs && lp && !lp->tokens.empty()) lpj = chat_logprobs(tok, lp->tokens, lp->logprobs, lp->top);
  out["choices"] = json::array(
      {{{"index", index}, {"delta", std::move(delta)}, {"logprobs", lpj}, {"finish_reason", std::move(finish_reason)}}});
  if (include_usage_field) out["usage"] = nullptr;
  return out;
}

json usage_chunk(const ResponseMeta& meta, const json& usage) {
  json out = base(meta, meta.endpoint == Endpoint::kChat ? "chat.completion.chunk" : "text_completion");
  out["choices"] = json::array();
  out["usage"] = usage;
  return out;
}

std::string dump_json(const json& j) { return j.dump(-1, ' ', false, json::error_handler_t::replace); }

std::string sse_event(const json& j) { return "data: " + dump_json(j) + "\n\n"; }

}  // namespace tern::api
