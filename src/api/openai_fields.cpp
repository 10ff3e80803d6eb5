// Every top-level field of OpenAI's /v1/completions and /v1/chat/completions request bodies (the API
// reference's lists), classified once (docs/serve.md has the same table for users):
//   implemented   parsed in openai_request.cpp
//   no-op only    accepted with the value that changes nothing (tools: [], logit_bias: {}, ...); any other
//                 value is a 400 naming the field, since tern does not implement it
//   ignored       no client can observe the difference (ids for OpenAI's abuse tracking and dashboard,
//                 caching and latency hints): type-checked, accepted, logged once by the server
//   rejected      any non-null value is a 400 naming the field
// A field in none of the lists is a 400 too ("Unrecognized request argument supplied", as OpenAI says).
#include "api/openai_fields.h"

#include <cstring>

#include "api/json_fields.h"

namespace tern::api {
namespace {

using json = nlohmann::ordered_json;

enum class Use { kImplemented, kNoOpOnly, kIgnored, kRejected };

struct Rule {
  const char* name;
  Use use;
  // kNoOpOnly: the value is the no-op one; kIgnored: the value has the documented type.
  bool (*accept)(const json& v, const OpenAiRequest& r);
  const char* why;  // kNoOpOnly / kRejected: what tern lacks
};

bool is_string(const json& v, const OpenAiRequest&) { return v.is_string(); }
bool is_object(const json& v, const OpenAiRequest&) { return v.is_object(); }
bool is_false(const json& v, const OpenAiRequest&) { return v.is_boolean() && !v.get<bool>(); }
bool empty_array(const json& v, const OpenAiRequest&) { return v.is_array() && v.empty(); }
bool is_none(const json& v, const OpenAiRequest&) { return v.is_string() && v.get<std::string>() == "none"; }
bool empty_string(const json& v, const OpenAiRequest&) { return v.is_string() && v.get<std::string>().empty(); }
bool text_modality(const json& v, const OpenAiRequest&) { return v == json::array({"text"}); }
bool best_of_is_n(const json& v, const OpenAiRequest& r) { return v.is_number_integer() && v.get<int64_t>() == r.n; }

// Parsed by openai_request.cpp (accept is unused).
constexpr Rule impl(const char* name) { return {name, Use::kImplemented, nullptr, ""}; }

constexpr Rule kShared[] = {
    impl("model"), impl("max_tokens"), impl("temperature"), impl("top_p"), impl("n"), impl("stop"), impl("stream"),
    impl("stream_options"), impl("seed"), impl("presence_penalty"), impl("frequency_penalty"), impl("logprobs"),
    // vLLM's sampling extensions
    impl("top_k"), impl("min_p"), impl("repetition_penalty"), impl("ignore_eos"),
    // tern's latency targets (the slo scheduling policy)
    impl("slo_ttft_ms"), impl("slo_tpot_ms"),
    // tern's constrained-decoding fields (llama.cpp's GBNF; a regular expression), both endpoints
    impl("grammar"), impl("regex"),
    impl("logit_bias"),
    {"user", Use::kIgnored, is_string, ""},
};

constexpr Rule kChat[] = {
    impl("messages"), impl("max_completion_tokens"), impl("top_logprobs"),
    impl("tools"), impl("tool_choice"), impl("parallel_tool_calls"),
    {"functions", Use::kNoOpOnly, empty_array, "function calling is not implemented; only [] is accepted"},
    {"function_call", Use::kNoOpOnly, is_none, "function calling is not implemented; only \"none\" is accepted"},
    impl("response_format"),
    {"modalities", Use::kNoOpOnly, text_modality, "tern answers in text only; only [\"text\"] is accepted"},
    {"store", Use::kNoOpOnly, is_false, "tern stores no completions; only false is accepted"},
    {"echo", Use::kNoOpOnly, is_false, "echo is a /v1/completions field; only false is accepted here"},
    {"audio", Use::kRejected, nullptr, "audio output is not implemented"},
    {"reasoning_effort", Use::kRejected, nullptr, "the served model has no reasoning-effort control"},
    {"verbosity", Use::kRejected, nullptr, "verbosity control is not implemented"},
    {"web_search_options", Use::kRejected, nullptr, "web search is not implemented"},
    {"metadata", Use::kIgnored, is_object, ""},
    {"service_tier", Use::kIgnored, is_string, ""},
    {"prompt_cache_key", Use::kIgnored, is_string, ""},
    {"prompt_cache_retention", Use::kIgnored, is_string, ""},
    {"safety_identifier", Use::kIgnored, is_string, ""},
    {"prediction", Use::kIgnored, is_object, ""},
};

constexpr Rule kCompletions[] = {
    impl("prompt"), impl("echo"),
    {"best_of", Use::kNoOpOnly, best_of_is_n, "best-of ranking is not implemented; only best_of equal to n is accepted"},
    {"suffix", Use::kNoOpOnly, empty_string, "insertion (suffix) is not implemented; only \"\" is accepted"},
};

template <size_t N>
const Rule* find(const Rule (&rules)[N], const std::string& key) {
  for (const Rule& r : rules) {
    if (key == r.name) return &r;
  }
  return nullptr;
}

}  // namespace

std::optional<ApiError> check_request_fields(Endpoint endpoint, const json& body, const OpenAiRequest& r,
                                             std::vector<std::string>& ignored) {
  const bool chat = endpoint == Endpoint::kChat;
  for (const auto& [key, value] : body.items()) {
    const Rule* rule = find(kShared, key);
    if (!rule) rule = chat ? find(kChat, key) : find(kCompletions, key);
    if (!rule) {
      return bad_param(key, "Unrecognized request argument supplied: " + key + " (tern does not implement it)");
    }
    if (value.is_null() || rule->use == Use::kImplemented) continue;
    switch (rule->use) {
      case Use::kNoOpOnly:
        if (!rule->accept(value, r)) return bad_param(key, "'" + key + "': " + rule->why + ", got " + value.dump());
        break;
      case Use::kRejected:
        return bad_param(key, "'" + key + "' is not supported: " + std::string(rule->why));
      case Use::kIgnored:
        if (!rule->accept(value, r)) {
          return bad_param(key, "'" + key + "' must be " + (rule->accept == is_object ? "an object" : "a string") +
                                    ", got " + json_type_name(value));
        }
        ignored.push_back(key);
        break;
      default:
        break;
    }
  }
  return std::nullopt;
}

}  // namespace tern::api
