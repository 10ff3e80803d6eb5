// Anthropic Messages request bodies -> OpenAiRequest: see anthropic_request.h. The body is rewritten as the
// equivalent OpenAI chat body and parsed by parse_openai_request, so the messages, tools and sampling are
// validated by exactly one parser; its errors are renamed to the Anthropic fields the client sent.
#include "api/anthropic_request.h"

#include <cstring>

#include "api/json_fields.h"

namespace tern::api {
namespace {

using json = nlohmann::ordered_json;

// The top-level fields of a Messages request (Anthropic's API reference). Ignored ones change nothing a
// client can observe: request metadata and the service tier. Rejected ones name what tern lacks.
struct FieldRule {
  const char* name;
  enum { kImplemented, kIgnored, kRejected } use;
  const char* why;
};
constexpr FieldRule kFields[] = {
    {"model", FieldRule::kImplemented, ""},
    {"messages", FieldRule::kImplemented, ""},
    {"max_tokens", FieldRule::kImplemented, ""},
    {"system", FieldRule::kImplemented, ""},
    {"stop_sequences", FieldRule::kImplemented, ""},
    {"stream", FieldRule::kImplemented, ""},
    {"temperature", FieldRule::kImplemented, ""},
    {"top_k", FieldRule::kImplemented, ""},
    {"top_p", FieldRule::kImplemented, ""},
    {"tools", FieldRule::kImplemented, ""},
    {"tool_choice", FieldRule::kImplemented, ""},
    {"thinking", FieldRule::kImplemented, ""},
    {"metadata", FieldRule::kImplemented, ""},
    {"service_tier", FieldRule::kIgnored, ""},
    {"container", FieldRule::kRejected, "tern runs no code-execution containers"},
    {"mcp_servers", FieldRule::kRejected, "tern connects to no MCP servers; give the tools in 'tools'"},
    {"context_management", FieldRule::kRejected, "tern does not edit the context; send the messages to use"},
};
constexpr const char* kCountTokensFields[] = {"model", "messages", "system", "tools", "tool_choice", "thinking"};

std::optional<ApiError> check_fields(const json& b, bool count_tokens) {
  for (const auto& [key, v] : b.items()) {
    if (count_tokens) {
      bool ok = false;
      for (const char* k : kCountTokensFields) ok = ok || key == k;
      if (!ok) return bad_param(key, key + ": Extra inputs are not permitted");
      continue;
    }
    const FieldRule* rule = nullptr;
    for (const auto& r : kFields) rule = key == r.name ? &r : rule;
    if (!rule) return bad_param(key, key + ": Extra inputs are not permitted");
    if (rule->use == FieldRule::kRejected && !v.is_null()) {
      return bad_param(key, "'" + key + "' is not supported: " + rule->why);
    }
  }
  return std::nullopt;
}

// Text of a string or of an array of {type: "text", text} blocks (system, tool_result content).
std::optional<ApiError> text_of(const json& v, const std::string& at, std::string& out) {
  if (v.is_string()) {
    out = v.get<std::string>();
    return std::nullopt;
  }
  if (!v.is_array()) return bad_param(at, "'" + at + "' must be a string or an array of text blocks");
  for (size_t i = 0; i < v.size(); ++i) {
    const json& blk = v[i];
    const std::string bat = at + "[" + std::to_string(i) + "]";
    if (!blk.is_object() || !blk.contains("type") || blk["type"] != "text" || !blk.contains("text") ||
        !blk["text"].is_string()) {
      return bad_param(bat, "'" + bat + "' must be a text block {\"type\": \"text\", \"text\": ...} (tern reads text only)");
    }
    if (!out.empty()) out += "\n";
    out += blk["text"].get<std::string>();
  }
  return std::nullopt;
}

// Keys a content block may carry besides these are an error; cache_control / citations are hints tern
// does not need (its prefix cache is automatic).
std::optional<ApiError> only_keys(const json& blk, const std::string& at, std::initializer_list<const char*> keys) {
  for (const auto& [k, v] : blk.items()) {
    bool ok = k == "type" || k == "cache_control" || k == "citations";
    for (const char* want : keys) ok = ok || k == want;
    if (!ok) return bad_param(at + "." + k, "'" + at + "." + k + "' is not a field of this content block");
  }
  return std::nullopt;
}

// One Anthropic message -> OpenAI messages appended to `out` (tool results first, then text).
std::optional<ApiError> convert_message(const json& m, size_t index, json& out) {
  const std::string at = "messages[" + std::to_string(index) + "]";
  if (!m.is_object()) return bad_param(at, "'" + at + "' must be an object");
  for (const auto& [k, v] : m.items()) {
    if (k != "role" && k != "content") return bad_param(at + "." + k, "'" + at + "." + k + "': Extra inputs are not permitted");
  }
  const json* role = m.contains("role") ? &m["role"] : nullptr;
  if (!role || !role->is_string() || (*role != "user" && *role != "assistant")) {
    return bad_param(at + ".role", "'" + at + ".role' must be \"user\" or \"assistant\"");
  }
  const bool assistant = *role == "assistant";
  if (!m.contains("content")) return bad_param(at + ".content", "'" + at + ".content' is required");
  const json& content = m["content"];
  if (content.is_string()) {
    out.push_back({{"role", *role}, {"content", content}});
    return std::nullopt;
  }
  if (!content.is_array()) return bad_param(at + ".content", "'" + at + ".content' must be a string or an array of blocks");
  std::string text;
  json calls = json::array();
  for (size_t j = 0; j < content.size(); ++j) {
    const json& blk = content[j];
    const std::string bat = at + ".content[" + std::to_string(j) + "]";
    if (!blk.is_object() || !blk.contains("type") || !blk["type"].is_string()) {
      return bad_param(bat, "'" + bat + "' must be a content block with a 'type'");
    }
    const std::string type = blk["type"];
    if (type == "text") {
      if (auto e = only_keys(blk, bat, {"text"})) return e;
      if (!blk.contains("text") || !blk["text"].is_string()) return bad_param(bat + ".text", "'" + bat + ".text' must be a string");
      text += blk["text"].get<std::string>();
    } else if (type == "tool_use" && assistant) {
      if (auto e = only_keys(blk, bat, {"id", "name", "input"})) return e;
      if (!blk.contains("id") || !blk["id"].is_string() || !blk.contains("name") || !blk["name"].is_string() ||
          !blk.contains("input") || !blk["input"].is_object()) {
        return bad_param(bat, "'" + bat + "' (tool_use) needs a string 'id', a string 'name' and an object 'input'");
      }
      calls.push_back({{"id", blk["id"]}, {"type", "function"},
                       {"function", {{"name", blk["name"]}, {"arguments", blk["input"].dump()}}}});
    } else if (type == "tool_result" && !assistant) {
      if (auto e = only_keys(blk, bat, {"tool_use_id", "content", "is_error"})) return e;
      if (!blk.contains("tool_use_id") || !blk["tool_use_id"].is_string()) {
        return bad_param(bat + ".tool_use_id", "'" + bat + ".tool_use_id' must be a string");
      }
      std::string result;
      if (blk.contains("content") && !blk["content"].is_null()) {
        if (auto e = text_of(blk["content"], bat + ".content", result)) return e;
      }
      if (blk.contains("is_error") && !blk["is_error"].is_boolean()) {
        return bad_param(bat + ".is_error", "'" + bat + ".is_error' must be a boolean");
      }
      if (blk.value("is_error", false)) result = "Error: " + result;
      out.push_back({{"role", "tool"}, {"tool_call_id", blk["tool_use_id"]}, {"content", result}});
    } else if ((type == "thinking" || type == "redacted_thinking") && assistant) {
      continue;  // earlier turns' thinking is not sent back to the model (Anthropic drops it too)
    } else {
      return bad_param(bat + ".type", "'" + bat + ".type' \"" + type + "\" is not supported in a " +
                                          std::string(*role) + " message (tern reads text" +
                                          (assistant ? ", tool_use and thinking" : " and tool_result") + " blocks)");
    }
  }
  if (assistant) {
    json msg = {{"role", "assistant"}, {"content", text}};
    if (!calls.empty()) msg["tool_calls"] = calls;
    out.push_back(std::move(msg));
  } else if (!text.empty() || out.empty() || out.back()["role"] != "tool") {
    out.push_back({{"role", "user"}, {"content", text}});
  }
  return std::nullopt;
}

std::optional<ApiError> convert_tools(const json& tools, json& out) {
  if (!tools.is_array()) return bad_param("tools", "'tools' must be an array");
  out = json::array();
  for (size_t i = 0; i < tools.size(); ++i) {
    const json& t = tools[i];
    const std::string at = "tools[" + std::to_string(i) + "]";
    if (!t.is_object()) return bad_param(at, "'" + at + "' must be an object");
    if (t.contains("type") && !t["type"].is_null() && t["type"] != "custom") {
      return bad_param(at + ".type", "'" + at + ".type' " + t["type"].dump() +
                                         " is a server tool tern does not run; give client tools {name, description, input_schema}");
    }
    for (const auto& [k, v] : t.items()) {
      if (k != "type" && k != "name" && k != "description" && k != "input_schema" && k != "cache_control") {
        return bad_param(at + "." + k, "'" + at + "." + k + "' is not a field of a tool");
      }
    }
    if (!t.contains("name") || !t["name"].is_string()) return bad_param(at + ".name", "'" + at + ".name' must be a string");
    if (!t.contains("input_schema") || !t["input_schema"].is_object()) {
      return bad_param(at + ".input_schema", "'" + at + ".input_schema' must be a JSON Schema object");
    }
    json fn = {{"name", t["name"]}, {"parameters", t["input_schema"]}};
    if (t.contains("description") && !t["description"].is_null()) fn["description"] = t["description"];
    out.push_back({{"type", "function"}, {"function", fn}});
  }
  return std::nullopt;
}

// tool_choice {type: auto | any | tool | none, name, disable_parallel_tool_use} -> OpenAI's fields.
std::optional<ApiError> convert_tool_choice(const json& tc, json& body) {
  if (!tc.is_object() || !tc.contains("type") || !tc["type"].is_string()) {
    return bad_param("tool_choice", "'tool_choice' must be an object with a 'type' (auto, any, tool or none)");
  }
  for (const auto& [k, v] : tc.items()) {
    if (k != "type" && k != "name" && k != "disable_parallel_tool_use") {
      return bad_param("tool_choice." + k, "'tool_choice." + k + "' is not a field of tool_choice");
    }
  }
  const std::string type = tc["type"];
  if (type == "auto") {
    body["tool_choice"] = "auto";
  } else if (type == "any") {
    body["tool_choice"] = "required";
  } else if (type == "none") {
    body["tool_choice"] = "none";
  } else if (type == "tool") {
    if (!tc.contains("name") || !tc["name"].is_string()) return bad_param("tool_choice.name", "'tool_choice.name' must be a string");
    body["tool_choice"] = {{"type", "function"}, {"function", {{"name", tc["name"]}}}};
  } else {
    return bad_param("tool_choice.type", "'tool_choice.type' must be auto, any, tool or none, got \"" + type + "\"");
  }
  if (tc.contains("disable_parallel_tool_use")) {
    if (!tc["disable_parallel_tool_use"].is_boolean()) {
      return bad_param("tool_choice.disable_parallel_tool_use", "'tool_choice.disable_parallel_tool_use' must be a boolean");
    }
    if (type != "none") body["parallel_tool_calls"] = !tc["disable_parallel_tool_use"].get<bool>();
  }
  return std::nullopt;
}

std::optional<ApiError> check_thinking(const json& t) {
  if (!t.is_object() || !t.contains("type") || !t["type"].is_string()) {
    return bad_param("thinking", "'thinking' must be {\"type\": \"enabled\", \"budget_tokens\": N} or {\"type\": \"disabled\"}");
  }
  if (t["type"] == "disabled") return std::nullopt;
  return bad_param("thinking", "'thinking' budgets are not implemented: a reasoning model's thinking is returned as "
                               "thinking blocks whenever it reasons; send {\"type\": \"disabled\"} or leave it out");
}

}  // namespace

std::string anthropic_param(const std::string& p) {
  if (p == "max_completion_tokens") return "max_tokens";
  if (p == "stop") return "stop_sequences";
  if (p == "parallel_tool_calls") return "tool_choice.disable_parallel_tool_use";
  if (p == "user") return "metadata.user_id";
  if (p.rfind("tools[", 0) == 0) {
    const auto f = p.find(".function.parameters");
    if (f != std::string::npos) return p.substr(0, f) + ".input_schema" + p.substr(f + 20);
    const auto g = p.find(".function");
    if (g != std::string::npos) return p.substr(0, g) + p.substr(g + 9);
  }
  // Message indices differ once tool results and the system prompt became messages of their own.
  if (p.rfind("messages[", 0) == 0) return "messages";
  return p;
}

std::variant<AnthropicRequest, ApiError> parse_anthropic_request(std::string_view body, bool count_tokens) {
  auto body_json = parse_request_json(body);
  if (auto* e = std::get_if<ApiError>(&body_json)) return *e;
  const json b = std::move(std::get<json>(body_json));
  if (!b.is_object()) return bad_param("", "the request body must be a JSON object");
  if (auto e = check_fields(b, count_tokens)) return *e;
  json o = json::object();
  if (!b.contains("model") || !b["model"].is_string()) return bad_param("model", "'model' must be a string");
  o["model"] = b["model"];
  if (!count_tokens) {
    if (!b.contains("max_tokens")) return bad_param("max_tokens", "'max_tokens' is required");
    Fields f(b);
    f.integer("max_tokens", 1, int64_t(1) << 40);
    f.number("temperature", 0, 1);  // Anthropic's range
    if (f.failed()) return f.error();
    for (const char* k : {"max_tokens", "temperature", "top_p", "top_k", "stream"}) {
      if (b.contains(k) && !b[k].is_null()) o[std::strcmp(k, "max_tokens") == 0 ? "max_completion_tokens" : k] = b[k];
    }
    if (b.contains("stop_sequences") && !b["stop_sequences"].is_null()) {
      const json& st = b["stop_sequences"];
      bool strings = st.is_array();
      for (const json& v : st) strings = strings && v.is_string();
      if (!strings) return bad_param("stop_sequences", "'stop_sequences' must be an array of strings");
      o["stop"] = st;
    }
    if (b.contains("metadata") && !b["metadata"].is_null()) {
      const json& md = b["metadata"];
      if (!md.is_object()) return bad_param("metadata", "'metadata' must be an object");
      for (const auto& [k, v] : md.items()) {
        if (k != "user_id") return bad_param("metadata." + k, "'metadata." + k + "' is not a field of metadata");
        if (!v.is_null() && !v.is_string()) return bad_param("metadata.user_id", "'metadata.user_id' must be a string");
      }
    }
  }
  if (b.contains("thinking") && !b["thinking"].is_null()) {
    if (auto e = check_thinking(b["thinking"])) return *e;
  }

  json msgs = json::array();
  if (b.contains("system") && !b["system"].is_null()) {
    std::string sys;
    if (auto e = text_of(b["system"], "system", sys)) return *e;
    msgs.push_back({{"role", "system"}, {"content", sys}});
  }
  if (!b.contains("messages") || !b["messages"].is_array() || b["messages"].empty()) {
    return bad_param("messages", "'messages' must be a non-empty array");
  }
  const json& in = b["messages"];
  for (size_t i = 0; i < in.size(); ++i) {
    if (auto e = convert_message(in[i], i, msgs)) return *e;
  }
  if (!count_tokens && in.back().is_object() && in.back().value("role", "") == "assistant") {
    return bad_param("messages", "a final assistant message (a prefill to continue) is not supported: end with a user turn");
  }
  o["messages"] = std::move(msgs);
  if (b.contains("tools") && !b["tools"].is_null()) {
    json tools;
    if (auto e = convert_tools(b["tools"], tools)) return *e;
    if (!tools.empty()) o["tools"] = std::move(tools);
  }
  if (b.contains("tool_choice") && !b["tool_choice"].is_null()) {
    if (auto e = convert_tool_choice(b["tool_choice"], o)) return *e;
    if (!o.contains("tools")) {
      if (o["tool_choice"] == "none") {
        o.erase("tool_choice");
        o.erase("parallel_tool_calls");
      } else {
        return bad_param("tool_choice", "'tool_choice' needs 'tools'");
      }
    }
  }

  auto parsed = parse_openai_request(Endpoint::kChat, o.dump());
  if (auto* e = std::get_if<ApiError>(&parsed)) {
    ApiError renamed = *e;
    renamed.param = anthropic_param(e->param);
    return renamed;
  }
  AnthropicRequest r;
  r.chat = std::move(std::get<OpenAiRequest>(parsed));
  return r;
}

}  // namespace tern::api
