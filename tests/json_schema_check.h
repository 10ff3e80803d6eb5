// Test support: validates a JSON value against the JSON Schema keywords the constrain layer supports (an
// independent check of what constrained decoding produced). Returns "" when valid, else the first violation.
// oneOf is checked as "at least one" (the grammar does not enforce exclusivity; docs/structured-output.md).
#pragma once

#include <nlohmann/json.hpp>
#include <regex>
#include <string>

namespace tern::test {

namespace detail {

inline size_t utf8_chars(const std::string& s) {
  size_t n = 0;
  for (unsigned char c : s) n += (c & 0xC0) != 0x80;
  return n;
}

inline const nlohmann::json* resolve_ref(const nlohmann::json& root, const std::string& ref) {
  if (ref == "#") return &root;
  try {
    return &root.at(nlohmann::json::json_pointer(ref.substr(1)));
  } catch (const std::exception&) {
    return nullptr;
  }
}

inline bool type_is(const nlohmann::json& v, const std::string& t) {
  if (t == "null") return v.is_null();
  if (t == "boolean") return v.is_boolean();
  if (t == "integer") return v.is_number_integer() || (v.is_number_float() && v.get<double>() == std::floor(v.get<double>()));
  if (t == "number") return v.is_number();
  if (t == "string") return v.is_string();
  if (t == "array") return v.is_array();
  if (t == "object") return v.is_object();
  return false;
}

inline std::string check(const nlohmann::json& v, const nlohmann::json& s, const nlohmann::json& root, const std::string& at,
                         int depth) {
  if (depth > 200) return at + ": too deep";
  if (s.is_boolean()) return s.get<bool>() ? "" : at + ": schema false";
  if (s.contains("$ref")) {
    const nlohmann::json* t = resolve_ref(root, s["$ref"]);
    return t ? check(v, *t, root, at, depth + 1) : at + ": bad $ref";
  }
  for (const char* k : {"anyOf", "oneOf"}) {
    if (!s.contains(k)) continue;
    for (const auto& sub : s[k])
      if (check(v, sub, root, at, depth + 1).empty()) return "";
    return at + ": matches no " + k + " branch";
  }
  if (s.contains("allOf"))
    for (const auto& sub : s["allOf"]) {
      std::string e = check(v, sub, root, at, depth + 1);
      if (!e.empty()) return e;
    }
  if (s.contains("const") && v != s["const"]) return at + ": not the const";
  if (s.contains("enum") && std::find(s["enum"].begin(), s["enum"].end(), v) == s["enum"].end()) return at + ": not in enum";
  if (s.contains("type")) {
    bool ok = false;
    if (s["type"].is_string()) ok = type_is(v, s["type"]);
    else for (const auto& t : s["type"]) ok = ok || type_is(v, t);
    if (!ok) return at + ": wrong type " + v.dump();
  }
  if (v.is_number()) {
    const double x = v.get<double>();
    if (s.contains("minimum") && x < s["minimum"].get<double>()) return at + ": below minimum";
    if (s.contains("maximum") && x > s["maximum"].get<double>()) return at + ": above maximum";
    if (s.contains("exclusiveMinimum") && x <= s["exclusiveMinimum"].get<double>()) return at + ": not above exclusiveMinimum";
    if (s.contains("exclusiveMaximum") && x >= s["exclusiveMaximum"].get<double>()) return at + ": not below exclusiveMaximum";
  }
  if (v.is_string()) {
    const std::string str = v.get<std::string>();
    const size_t n = utf8_chars(str);
    if (s.contains("minLength") && n < s["minLength"].get<size_t>()) return at + ": shorter than minLength";
    if (s.contains("maxLength") && n > s["maxLength"].get<size_t>()) return at + ": longer than maxLength";
    if (s.contains("pattern")) {
      std::string p = s["pattern"];
      if (!p.empty() && p.front() == '^') p.erase(0, 1);
      if (!p.empty() && p.back() == '$') p.pop_back();
      if (!std::regex_match(str, std::regex(p))) return at + ": does not match pattern " + s["pattern"].get<std::string>();
    }
  }
  if (v.is_array()) {
    const auto& a = v;
    if (s.contains("minItems") && a.size() < s["minItems"].get<size_t>()) return at + ": fewer than minItems";
    if (s.contains("maxItems") && a.size() > s["maxItems"].get<size_t>()) return at + ": more than maxItems";
    size_t np = 0;
    if (s.contains("prefixItems")) {
      np = s["prefixItems"].size();
      for (size_t i = 0; i < std::min(np, a.size()); ++i) {
        std::string e = check(a[i], s["prefixItems"][i], root, at + "/" + std::to_string(i), depth + 1);
        if (!e.empty()) return e;
      }
    }
    if (s.contains("items"))
      for (size_t i = np; i < a.size(); ++i) {
        std::string e = check(a[i], s["items"], root, at + "/" + std::to_string(i), depth + 1);
        if (!e.empty()) return e;
      }
  }
  if (v.is_object()) {
    if (s.contains("required"))
      for (const auto& r : s["required"])
        if (!v.contains(r.get<std::string>())) return at + ": missing required " + r.get<std::string>();
    for (auto it = v.begin(); it != v.end(); ++it) {
      const std::string where = at + "/" + it.key();
      if (s.contains("properties") && s["properties"].contains(it.key())) {
        std::string e = check(it.value(), s["properties"][it.key()], root, where, depth + 1);
        if (!e.empty()) return e;
      } else if (s.contains("additionalProperties")) {
        std::string e = check(it.value(), s["additionalProperties"], root, where, depth + 1);
        if (!e.empty()) return e;
      }
    }
  }
  return "";
}

}  // namespace detail

inline std::string validate_json(const nlohmann::json& value, const nlohmann::json& schema) {
  return detail::check(value, schema, schema, "", 0);
}

}  // namespace tern::test
