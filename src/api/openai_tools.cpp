// Tool and logit_bias fields: see openai_tools.h.
#include "api/openai_tools.h"

#include <cctype>
#include <cstdlib>

#include "api/json_fields.h"
#include "formats/json_util.h"

namespace tern::api {
namespace {

using json = nlohmann::ordered_json;

// OpenAI: a-z, A-Z, 0-9, underscores and dashes, at most 64 characters.
bool valid_tool_name(const std::string& s) {
  if (s.empty() || s.size() > 64) return false;
  for (char c : s) {
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '_' && c != '-') return false;
  }
  return true;
}

std::optional<ApiError> parse_tool(const json& t, const std::string& at, json& out) {
  if (!t.is_object()) return bad_param(at, "'" + at + "' must be an object");
  for (const auto& [key, v] : t.items()) {
    if (key != "type" && key != "function") return bad_param(at + "." + key, "Unrecognized tool field: " + at + "." + key);
  }
  if (t.value("type", json()) != "function") {
    return bad_param(at + ".type", "'" + at + ".type' must be \"function\" (the only tool type tern implements)");
  }
  auto f = t.find("function");
  if (f == t.end() || !f->is_object()) return bad_param(at + ".function", "'" + at + ".function' must be an object");
  const std::string fa = at + ".function";
  json fn = json::object();
  for (const auto& [key, v] : f->items()) {
    const std::string p = fa + "." + key;
    if (key == "name" || key == "description") {
      if (!v.is_string()) return bad_param(p, "'" + p + "' must be a string, got " + json_type_name(v));
    } else if (key == "parameters") {
      if (!v.is_object()) return bad_param(p, "'" + p + "' must be a JSON Schema object, got " + json_type_name(v));
    } else if (key == "strict") {
      if (!v.is_boolean() && !v.is_null()) return bad_param(p, "'" + p + "' must be a boolean");
    } else {
      return bad_param(p, "Unrecognized function field: " + p);
    }
    if (!v.is_null()) fn[key] = v;
  }
  if (!fn.contains("name") || !valid_tool_name(fn["name"].get<std::string>())) {
    return bad_param(fa + ".name", "'" + fa + ".name' must be 1 to 64 characters of a-z, A-Z, 0-9, _ and -");
  }
  if (!fn.contains("parameters")) fn["parameters"] = {{"type", "object"}, {"properties", json::object()}};
  out = {{"type", "function"}, {"function", std::move(fn)}};
  return std::nullopt;
}

}  // namespace

std::optional<ApiError> parse_tool_fields(const json& body, OpenAiRequest& r) {
  ToolFields& tf = r.tools;
  auto tools = body.find("tools");
  if (tools != body.end() && !tools->is_null()) {
    if (!tools->is_array()) return bad_param("tools", "'tools' must be an array, got " + json_type_name(*tools));
    if (tools->size() > size_t(kMaxTools)) {
      return bad_param("tools", "'tools' may hold at most " + std::to_string(kMaxTools) + " tools");
    }
    for (size_t i = 0; i < tools->size(); ++i) {
      json t;
      if (auto e = parse_tool((*tools)[i], "tools[" + std::to_string(i) + "]", t)) return e;
      for (const json& prev : tf.tools) {
        if (prev["function"]["name"] == t["function"]["name"]) {
          return bad_param("tools[" + std::to_string(i) + "].function.name",
                           "tool name '" + t["function"]["name"].get<std::string>() + "' is given twice");
        }
      }
      tf.tools.push_back(std::move(t));
    }
  }
  const bool have = !tf.tools.empty();
  tf.choice = have ? ToolChoice::kAuto : ToolChoice::kNone;  // OpenAI's defaults
  auto choice = body.find("tool_choice");
  if (choice != body.end() && !choice->is_null()) {
    const json& c = *choice;
    if (c.is_string()) {
      const std::string s = c.get<std::string>();
      if (s == "none") {
        tf.choice = ToolChoice::kNone;
      } else if (s == "auto" || s == "required") {
        if (!have) return bad_param("tool_choice", "'tool_choice' \"" + s + "\" needs a non-empty 'tools'");
        tf.choice = s == "auto" ? ToolChoice::kAuto : ToolChoice::kRequired;
      } else {
        return bad_param("tool_choice", "'tool_choice' must be \"none\", \"auto\", \"required\" or "
                                        "{\"type\": \"function\", \"function\": {\"name\": ...}}, got \"" + s + "\"");
      }
    } else if (c.is_object()) {
      const json* fn = c.contains("function") ? &c["function"] : nullptr;
      if (c.value("type", json()) != "function" || !fn || !fn->is_object() || !fn->contains("name") ||
          !(*fn)["name"].is_string() || c.size() != 2 || fn->size() != 1) {
        return bad_param("tool_choice", "'tool_choice' as an object must be {\"type\": \"function\", \"function\": "
                                        "{\"name\": string}}");
      }
      tf.named = (*fn)["name"].get<std::string>();
      bool known = false;
      for (const json& t : tf.tools) known = known || t["function"]["name"] == tf.named;
      if (!known) {
        return bad_param("tool_choice", "'tool_choice' names the function '" + tf.named + "', which is not in 'tools'");
      }
      tf.choice = ToolChoice::kNamed;
    } else {
      return bad_param("tool_choice", "'tool_choice' must be a string or an object, got " + json_type_name(c));
    }
  }
  auto par = body.find("parallel_tool_calls");
  if (par != body.end() && !par->is_null()) {
    if (!par->is_boolean()) return bad_param("parallel_tool_calls", "'parallel_tool_calls' must be a boolean");
    tf.parallel = par->get<bool>();
  }
  return std::nullopt;
}

std::optional<ApiError> parse_message_tool_calls(const json& v, const std::string& param, json& out) {
  if (!v.is_array()) return bad_param(param, "'" + param + "' must be an array");
  out = json::array();
  for (size_t i = 0; i < v.size(); ++i) {
    const std::string at = param + "[" + std::to_string(i) + "]";
    const json& c = v[i];
    if (!c.is_object()) return bad_param(at, "'" + at + "' must be an object");
    for (const auto& [key, x] : c.items()) {
      if (key != "id" && key != "type" && key != "function") return bad_param(at + "." + key, "Unrecognized field " + at + "." + key);
    }
    if (!c.contains("id") || !c["id"].is_string()) return bad_param(at + ".id", "'" + at + ".id' must be a string");
    if (c.value("type", json("function")) != "function") {
      return bad_param(at + ".type", "'" + at + ".type' must be \"function\"");
    }
    const json* fn = c.contains("function") ? &c["function"] : nullptr;
    if (!fn || !fn->is_object() || !fn->contains("name") || !(*fn)["name"].is_string()) {
      return bad_param(at + ".function", "'" + at + ".function' must be {\"name\": string, \"arguments\": string}");
    }
    json args = json::object();
    if (fn->contains("arguments") && !(*fn)["arguments"].is_null()) {
      const json& a = (*fn)["arguments"];
      if (!a.is_string()) return bad_param(at + ".function.arguments", "'" + at + ".function.arguments' must be a string");
      const std::string& text = a.get_ref<const std::string&>();
      const bool bounded = json_nesting_depth(text) <= kMaxRequestJsonDepth;  // dump() recurses
      if (bounded) args = json::parse(text, nullptr, false);
      if (!bounded || args.is_discarded()) {
        return bad_param(at + ".function.arguments", "'" + at + ".function.arguments' must be a JSON object as text");
      }
    }
    out.push_back({{"id", c["id"]}, {"type", "function"}, {"function", {{"name", (*fn)["name"]}, {"arguments", args}}}});
  }
  return std::nullopt;
}

std::optional<ApiError> parse_logit_bias(const json& v, SamplingParams& s) {
  if (!v.is_object()) return bad_param("logit_bias", "'logit_bias' must be an object {\"token id\": bias}");
  for (const auto& [key, b] : v.items()) {
    char* end = nullptr;
    const long long id = std::strtoll(key.c_str(), &end, 10);
    if (key.empty() || *end != '\0' || id < 0 || id > 0x7fffffff) {
      return bad_param("logit_bias", "'logit_bias' keys must be token ids (non-negative integers), got \"" + key + "\"");
    }
    if (!b.is_number() || b.get<double>() < -100 || b.get<double>() > 100) {
      return bad_param("logit_bias", "'logit_bias' values must be numbers in [-100, 100], got " + b.dump() +
                                         " for token " + key);
    }
    s.logit_bias.emplace_back(int32_t(id), float(b.get<double>()));
  }
  return std::nullopt;
}

}  // namespace tern::api
