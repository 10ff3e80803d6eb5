// Parsing of OpenAI request bodies: see openai_request.h.
#include "api/openai_request.h"

#include <cmath>
#include <limits>

#include "api/json_fields.h"
#include "api/openai_fields.h"
#include "api/constraint_request.h"
#include "api/openai_tools.h"

namespace tern::api {
namespace {

using json = nlohmann::ordered_json;

// Token ids in a prompt: non-negative int32 (the vocab check happens where the vocab is known).
bool parse_ids(const json& arr, std::vector<int32_t>& ids) {
  for (const json& v : arr) {
    if (!v.is_number_integer()) return false;
    const int64_t i = v.get<int64_t>();
    if (i < 0 || i > std::numeric_limits<int32_t>::max()) return false;
    ids.push_back(int32_t(i));
  }
  return true;
}

std::optional<ApiError> parse_prompt(const json* p, std::vector<PromptInput>& prompts) {
  const ApiError bad = bad_param("prompt",
                                 "'prompt' must be a string, an array of strings, an array of token ids, or an "
                                 "array of arrays of token ids");
  if (!p) return bad_param("prompt", "'prompt' is required");
  if (p->is_string()) {
    prompts.emplace_back(p->get<std::string>());
    return std::nullopt;
  }
  if (!p->is_array() || p->empty()) return p->is_array() ? bad_param("prompt", "'prompt' must not be empty") : bad;
  if ((*p)[0].is_number()) {
    std::vector<int32_t> ids;
    if (!parse_ids(*p, ids)) return bad_param("prompt", "'prompt' token ids must be integers in [0, 2^31)");
    prompts.emplace_back(std::move(ids));
    return std::nullopt;
  }
  for (const json& item : *p) {
    if (item.is_string()) {
      prompts.emplace_back(item.get<std::string>());
    } else if (item.is_array() && !item.empty()) {
      std::vector<int32_t> ids;
      if (!parse_ids(item, ids)) return bad_param("prompt", "'prompt' token ids must be integers in [0, 2^31)");
      prompts.emplace_back(std::move(ids));
    } else {
      return bad;
    }
  }
  return std::nullopt;
}

// A message's fields besides role and content: name, tool_call_id, an assistant's tool_calls and
// reasoning_content go to the template; the fields of legacy function calls, refusals and audio are
// accepted only empty (tern implements none of them); others are 400s.
std::optional<ApiError> message_extras(const json& msg, const std::string& at, json& flat) {
  const std::string role = flat["role"].get<std::string>();
  for (const auto& [key, v] : msg.items()) {
    if (key == "role" || key == "content") continue;
    const std::string param = at + "." + key;
    if (key == "name" || key == "tool_call_id" || (key == "reasoning_content" && role == "assistant")) {
      if (v.is_null()) continue;
      if (!v.is_string()) return bad_param(param, "'" + param + "' must be a string, got " + json_type_name(v));
      flat[key] = v;
    } else if (key == "tool_calls" && role == "assistant") {
      if (v.is_null() || (v.is_array() && v.empty())) continue;
      json calls;
      if (auto e = parse_message_tool_calls(v, param, calls)) return e;
      flat[key] = std::move(calls);
    } else if (key == "tool_calls" || key == "function_call" || key == "refusal" || key == "audio") {
      if (v.is_null() || (key == "tool_calls" && v.is_array() && v.empty())) continue;
      return bad_param(param, "'" + param + "' is not supported (" +
                                  (key == "tool_calls" ? std::string("only assistant messages carry tool calls")
                                                       : "tern implements no legacy function calls, refusals or audio") +
                                  ")");
    } else {
      return bad_param(param, "Unrecognized message field supplied: " + param);
    }
  }
  return std::nullopt;
}

// Chat messages, with content flattened to a string (text parts joined).
std::optional<ApiError> parse_messages(const json* m, json& out) {
  if (!m) return bad_param("messages", "'messages' is required");
  if (!m->is_array()) return bad_param("messages", "'messages' must be an array, got " + json_type_name(*m));
  if (m->empty()) return bad_param("messages", "'messages' must contain at least one message");
  out = json::array();
  for (size_t i = 0; i < m->size(); ++i) {
    const std::string at = "messages[" + std::to_string(i) + "]";
    const json& msg = (*m)[i];
    if (!msg.is_object()) return bad_param(at, "'" + at + "' must be an object");
    auto role = msg.find("role");
    if (role == msg.end() || !role->is_string()) return bad_param(at + ".role", "'" + at + ".role' must be a string");
    const std::string r = role->get<std::string>();
    if (r != "system" && r != "developer" && r != "user" && r != "assistant" && r != "tool") {
      return bad_param(at + ".role", "'" + at + ".role' must be one of system, developer, user, assistant, tool; got '" +
                                         r + "'");
    }
    std::string text;
    auto content = msg.find("content");
    const bool has_content = content != msg.end() && !content->is_null();
    if (!has_content) {
      if (r != "assistant") return bad_param(at + ".content", "'" + at + ".content' is required");
    } else if (content->is_string()) {
      text = content->get<std::string>();
    } else if (content->is_array()) {
      for (const json& part : *content) {
        if (!part.is_object() || part.value("type", "") != "text" || !part.contains("text") ||
            !part["text"].is_string()) {
          return bad_param(at + ".content", "'" + at + ".content' parts must be {\"type\": \"text\", \"text\": string}");
        }
        text += part["text"].get<std::string>();
      }
    } else {
      return bad_param(at + ".content", "'" + at + ".content' must be a string or an array of text parts");
    }
    if (has_content && text.empty() && r != "assistant") {
      return bad_param(at + ".content", "'" + at + ".content' must not be empty");
    }
    json flat = {{"role", r == "developer" ? "system" : r}, {"content", text}};
    if (auto err = message_extras(msg, at, flat)) return err;
    out.push_back(std::move(flat));
  }
  return std::nullopt;
}

}  // namespace

ApiError bad_param(const std::string& param, const std::string& message) {
  ApiError e;
  e.message = message;
  e.param = param;
  return e;
}

std::string json_type_name(const json& v) {
  if (v.is_boolean()) return "boolean";
  if (v.is_number()) return "number";
  if (v.is_string()) return "string";
  if (v.is_array()) return "array";
  if (v.is_object()) return "object";
  return "null";
}

std::string error_body(const ApiError& e) {
  json err = {{"message", e.message}, {"type", e.type}, {"param", nullptr}, {"code", nullptr}};
  if (!e.param.empty()) err["param"] = e.param;
  if (!e.code.empty()) err["code"] = e.code;
  return json({{"error", err}}).dump(-1, ' ', false, json::error_handler_t::replace);
}

std::variant<OpenAiRequest, ApiError> parse_openai_request(Endpoint endpoint, std::string_view body) {
  auto parsed = parse_request_json(body);
  if (auto* e = std::get_if<ApiError>(&parsed)) return *e;
  json b = std::move(std::get<json>(parsed));
  if (!b.is_object()) {
    ApiError e;
    e.message = "the request body must be a JSON object";
    return e;
  }
  OpenAiRequest r;
  r.endpoint = endpoint;
  Fields f(b);
  const bool chat = endpoint == Endpoint::kChat;

  auto model = f.string("model");
  if (!f.failed() && !model) f.fail("model", "'model' is required");
  if (model) r.model = *model;

  if (!f.failed()) {
    auto err = chat ? parse_messages(f.get("messages"), r.messages) : parse_prompt(f.get("prompt"), r.prompts);
    if (err) return *err;
  }
  constexpr int64_t kMaxInt = std::numeric_limits<int32_t>::max();
  auto max_tokens = f.integer("max_tokens", 1, kMaxInt);
  if (chat) {
    if (auto mct = f.integer("max_completion_tokens", 1, kMaxInt)) max_tokens = mct;
  }
  r.max_tokens = max_tokens;
  if (auto v = f.number("temperature", 0, 2)) r.sampling.temperature = float(*v);
  if (auto v = f.number("top_p", 0, 1)) {
    if (*v <= 0) f.fail("top_p", "'top_p' must be in (0, 1]");
    r.sampling.top_p = float(*v);
  }
  if (auto v = f.integer("top_k", -1, kMaxInt)) r.sampling.top_k = *v < 0 ? 0 : int(*v);
  if (auto v = f.number("min_p", 0, 1)) r.sampling.min_p = float(*v);
  if (auto v = f.number("presence_penalty", -2, 2)) r.sampling.presence_penalty = float(*v);
  if (auto v = f.number("frequency_penalty", -2, 2)) r.sampling.frequency_penalty = float(*v);
  if (auto v = f.number("repetition_penalty", 0, 100)) {
    if (*v <= 0) f.fail("repetition_penalty", "'repetition_penalty' must be in (0, 100]");
    r.sampling.repetition_penalty = float(*v);
  }
  if (auto v = f.integer("seed", std::numeric_limits<int64_t>::min(), std::numeric_limits<int64_t>::max())) {
    r.sampling.seed = uint64_t(*v);
  }
  if (auto v = f.integer("n", 1, kMaxChoices)) r.n = int(*v);
  if (auto v = f.boolean("stream")) r.stream = *v;
  if (auto v = f.boolean("echo"); v && !chat) r.echo = *v;  // chat: only false (openai_fields.cpp)
  if (auto v = f.boolean("ignore_eos")) r.ignore_eos = *v;
  if (auto v = f.number("slo_ttft_ms", 0, 3.6e6)) r.slo_ttft_ms = *v;
  if (auto v = f.number("slo_tpot_ms", 0, 3.6e6)) r.slo_tpot_ms = *v;
  if (auto v = f.string("user")) r.user = *v;

  if (const json* so = f.get("stream_options"); so && !f.failed()) {
    if (!so->is_object()) {
      f.fail("stream_options", "'stream_options' must be an object");
    } else {
      Fields sf(*so, "stream_options.");
      if (auto v = sf.boolean("include_usage")) r.include_usage = *v;
      // Obfuscation pads chunks against a side channel of OpenAI's network; tern adds no padding.
      if (sf.boolean("include_obfuscation")) r.ignored_fields.push_back("stream_options.include_obfuscation");
      for (const auto& [key, v] : so->items()) {
        if (key != "include_usage" && key != "include_obfuscation") {
          sf.fail(key, "Unrecognized request argument supplied: stream_options." + key);
        }
      }
      if (sf.failed()) return sf.error();
    }
  }

  if (chat) {
    const bool want = f.boolean("logprobs").value_or(false);
    auto top = f.integer("top_logprobs", 0, kMaxTopLogprobs);
    if (top && !want && !f.failed()) f.fail("top_logprobs", "'top_logprobs' needs 'logprobs': true");
    if (want) r.top_logprobs = int(top.value_or(0));
  } else if (auto v = f.integer("logprobs", 0, kMaxTopLogprobs)) {
    r.top_logprobs = int(*v);
  }

  if (const json* s = f.get("stop"); s && !f.failed()) {
    if (s->is_string()) {
      if (!s->get<std::string>().empty()) r.stop.push_back(s->get<std::string>());
    } else if (s->is_array() && s->size() <= size_t(kMaxStopStrings)) {
      for (const json& item : *s) {
        if (!item.is_string()) {
          f.fail("stop", "'stop' must be a string or an array of strings");
          break;
        }
        if (!item.get<std::string>().empty()) r.stop.push_back(item.get<std::string>());
      }
    } else {
      f.fail("stop", "'stop' must be a string or an array of at most " + std::to_string(kMaxStopStrings) + " strings");
    }
  }
  if (f.failed()) return f.error();
  if (const json* lb = f.get("logit_bias")) {
    if (auto e = parse_logit_bias(*lb, r.sampling)) return *e;
  }
  if (chat) {
    if (auto e = parse_tool_fields(b, r)) return *e;
  }
  if (auto e = parse_constraint_fields(endpoint, b, r)) return *e;
  if (!chat && int64_t(r.prompts.size()) * r.n > kMaxChoices) {
    return bad_param("n", "'n' x number of prompts must be at most " + std::to_string(kMaxChoices));
  }
  if (r.echo && r.top_logprobs >= 0) {
    // OpenAI then returns the prompt's logprobs too; tern's engine computes those of generated tokens only.
    return bad_param("echo", "'echo' with 'logprobs' asks for the prompt's logprobs, which tern does not compute");
  }
  if (auto err = check_request_fields(endpoint, b, r, r.ignored_fields)) return *err;
  return r;
}

}  // namespace tern::api
