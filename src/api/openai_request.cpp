// Parsing of OpenAI request bodies: see openai_request.h.
#include "api/openai_request.h"

#include <cmath>
#include <limits>

namespace tern::api {
namespace {

using json = nlohmann::json;

std::string json_type(const json& v) {
  if (v.is_boolean()) return "boolean";
  if (v.is_number()) return "number";
  if (v.is_string()) return "string";
  if (v.is_array()) return "array";
  if (v.is_object()) return "object";
  return "null";
}

// Reads typed optional fields from an object; the first failure is kept (later reads are no-ops).
class Fields {
 public:
  explicit Fields(const json& obj, std::string prefix = "") : obj_(obj), prefix_(std::move(prefix)) {}
  bool failed() const { return error_.has_value(); }
  const ApiError& error() const { return *error_; }
  void fail(const std::string& key, const std::string& message) {
    if (!error_) error_ = bad_param(prefix_ + key, message);
  }

  const json* get(const char* key) const {
    auto it = obj_.find(key);
    return it == obj_.end() || it->is_null() ? nullptr : &*it;
  }

  std::optional<double> number(const char* key, double lo, double hi) {
    const json* v = get(key);
    if (!v || failed()) return std::nullopt;
    if (!v->is_number()) return type_error(key, "a number", *v), std::nullopt;
    const double d = v->get<double>();
    if (!std::isfinite(d) || d < lo || d > hi) {
      fail(key, "'" + prefix_ + key + "' must be a number in [" + fmt(lo) + ", " + fmt(hi) + "], got " + v->dump());
      return std::nullopt;
    }
    return d;
  }

  std::optional<int64_t> integer(const char* key, int64_t lo, int64_t hi) {
    const json* v = get(key);
    if (!v || failed()) return std::nullopt;
    int64_t i = 0;
    if (v->is_number_integer()) {
      if (v->is_number_unsigned() && v->get<uint64_t>() > uint64_t(std::numeric_limits<int64_t>::max())) {
        i = std::numeric_limits<int64_t>::max();
      } else {
        i = v->get<int64_t>();
      }
    } else if (v->is_number_float() && std::isfinite(v->get<double>()) && v->get<double>() == std::floor(v->get<double>()) &&
               std::fabs(v->get<double>()) < 9e18) {
      i = int64_t(v->get<double>());
    } else {
      type_error(key, "an integer", *v);
      return std::nullopt;
    }
    if (i < lo || i > hi) {
      fail(key, "'" + prefix_ + key + "' must be an integer in [" + std::to_string(lo) + ", " + std::to_string(hi) +
                    "], got " + v->dump());
      return std::nullopt;
    }
    return i;
  }

  std::optional<bool> boolean(const char* key) {
    const json* v = get(key);
    if (!v || failed()) return std::nullopt;
    if (!v->is_boolean()) return type_error(key, "a boolean", *v), std::nullopt;
    return v->get<bool>();
  }

  std::optional<std::string> string(const char* key) {
    const json* v = get(key);
    if (!v || failed()) return std::nullopt;
    if (!v->is_string()) return type_error(key, "a string", *v), std::nullopt;
    return v->get<std::string>();
  }

 private:
  static std::string fmt(double d) {
    std::string s = std::to_string(d);
    while (s.size() > 1 && s.back() == '0') s.pop_back();
    if (s.back() == '.') s.pop_back();
    return s;
  }
  void type_error(const char* key, const char* want, const json& got) {
    fail(key, "'" + prefix_ + key + "' must be " + want + ", got " + json_type(got));
  }

  const json& obj_;
  std::string prefix_;
  std::optional<ApiError> error_;
};

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

// Chat messages, with content flattened to a string (text parts joined).
std::optional<ApiError> parse_messages(const json* m, json& out) {
  if (!m) return bad_param("messages", "'messages' is required");
  if (!m->is_array()) return bad_param("messages", "'messages' must be an array, got " + json_type(*m));
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
    if (auto name = msg.find("name"); name != msg.end() && name->is_string()) flat["name"] = *name;
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

std::string error_body(const ApiError& e) {
  json err = {{"message", e.message}, {"type", e.type}, {"param", nullptr}, {"code", nullptr}};
  if (!e.param.empty()) err["param"] = e.param;
  if (!e.code.empty()) err["code"] = e.code;
  return json({{"error", err}}).dump(-1, ' ', false, json::error_handler_t::replace);
}

std::variant<OpenAiRequest, ApiError> parse_openai_request(Endpoint endpoint, std::string_view body) {
  json b = json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (b.is_discarded()) {
    ApiError e;
    e.message = "the request body is not valid JSON (or not valid UTF-8)";
    return e;
  }
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
  if (auto v = f.boolean("echo"); v && !chat) r.echo = *v;
  if (auto v = f.boolean("ignore_eos")) r.ignore_eos = *v;
  if (auto v = f.string("user")) r.user = *v;

  if (const json* so = f.get("stream_options"); so && !f.failed()) {
    if (!so->is_object()) {
      f.fail("stream_options", "'stream_options' must be an object");
    } else {
      Fields sf(*so, "stream_options.");
      if (auto v = sf.boolean("include_usage")) r.include_usage = *v;
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
  if (!chat && int64_t(r.prompts.size()) * r.n > kMaxChoices) {
    return bad_param("n", "'n' x number of prompts must be at most " + std::to_string(kMaxChoices));
  }
  return r;
}

}  // namespace tern::api
