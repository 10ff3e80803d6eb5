// JSON Schema -> GBNF. Each schema node becomes an expression; objects, arrays, $ref targets and lexical pieces
// become named rules (identical bodies share one rule). Whitespace: `ws` (nothing, one space, or a newline and up
// to 20 spaces/tabs) after '{', '[', ',', ':' and before '}', ']'; none around the top-level value, so that the
// grammar must end right after it.
#include "constrain/json_schema.h"

#include <fmt/format.h>

#include <cmath>
#include <map>
#include <set>

#include "constrain/grammar_ast.h"
#include "constrain/regex_parser.h"
#include "constrain/token_constraint.h"

namespace tern::constrain {
namespace {

using Json = nlohmann::ordered_json;

const char* kWs = R"(( " " | "\n" [ \t]{0,20} )?)";
const char* kChar = R"(( [^"\\\x00-\x1F] | "\\" ( ["\\/bfnrt] | "u" [0-9a-fA-F]{4} ) ))";
const char* kNumber =
    R"("-"? ( "0" | [1-9] [0-9]{0,15} ) ( "." [0-9]{1,16} )? ( [eE] [-+]? [0-9]{1,3} )?)";

const std::set<std::string> kAnnotations = {"$schema", "$id", "$comment", "title", "description", "default",
                                            "examples", "deprecated", "readOnly", "writeOnly", "$defs",
                                            "definitions", "$anchor", "contentMediaType", "contentEncoding"};
const std::set<std::string> kKnown = {"type", "enum", "const", "properties", "required", "additionalProperties",
                                      "items", "prefixItems", "minItems", "maxItems", "anyOf", "oneOf", "allOf",
                                      "$ref", "minLength", "maxLength", "pattern", "format", "minimum", "maximum",
                                      "exclusiveMinimum", "exclusiveMaximum", "uniqueItems"};

// Lexical formats (the inside of the string).
const std::map<std::string, std::string> kFormats = {
    {"date", R"([0-9]{4} "-" ( "0" [1-9] | "1" [0-2] ) "-" ( "0" [1-9] | [12] [0-9] | "3" [01] ))"},
    {"time", R"(( [01] [0-9] | "2" [0-3] ) ":" [0-5] [0-9] ":" [0-5] [0-9] ( "." [0-9]{1,9} )? ( "Z" | [+-] ( [01] [0-9] | "2" [0-3] ) ":" [0-5] [0-9] ))"},
    {"date-time", R"([0-9]{4} "-" ( "0" [1-9] | "1" [0-2] ) "-" ( "0" [1-9] | [12] [0-9] | "3" [01] ) [Tt ] ( [01] [0-9] | "2" [0-3] ) ":" [0-5] [0-9] ":" [0-5] [0-9] ( "." [0-9]{1,9} )? ( [Zz] | [+-] ( [01] [0-9] | "2" [0-3] ) ":" [0-5] [0-9] ))"},
    {"uuid", R"([0-9a-fA-F]{8} "-" [0-9a-fA-F]{4} "-" [0-9a-fA-F]{4} "-" [0-9a-fA-F]{4} "-" [0-9a-fA-F]{12})"},
    {"email", R"([A-Za-z0-9._%+-]{1,64} "@" [A-Za-z0-9-]{1,63} ( "." [A-Za-z0-9-]{1,63} ){0,8})"},
    {"uri", R"([A-Za-z] [A-Za-z0-9+.-]{0,31} ":" [^"\\\x00-\x20]+)"},
    {"ipv4", R"(( [0-9] | [1-9] [0-9] | "1" [0-9]{2} | "2" [0-4] [0-9] | "25" [0-5] ) ( "." ( [0-9] | [1-9] [0-9] | "1" [0-9]{2} | "2" [0-4] [0-9] | "25" [0-5] ) ){3})"},
};

class Converter {
 public:
  Converter(const Json& root, const GrammarLimits& limits) : root_(root), limits_(limits) {}

  Result<std::string> run() {
    TERN_ASSIGN_OR_RETURN(std::string body, visit(root_, "root", "", 0));
    std::string out = "root ::= " + body + "\n";
    for (const auto& name : order_) out += name + " ::= " + rules_[name] + "\n";
    if (int64_t(out.size()) > limits_.max_text_bytes) return Status::error("json_schema: the grammar is too large");
    return out;
  }

 private:
  Status err(const std::string& path, const std::string& what) const {
    return Status::error(fmt::format("json_schema: {} at '{}'", what, path.empty() ? "/" : path));
  }

  // A named rule with this body (a rule with the same body is reused).
  std::string rule(const std::string& hint, const std::string& body) {
    auto it = by_body_.find(body);
    if (it != by_body_.end()) return it->second;
    const std::string name = fresh_name(hint);
    rules_[name] = body;
    order_.push_back(name);
    by_body_[body] = name;
    return name;
  }

  std::string fresh_name(const std::string& hint) {
    std::string base;
    for (char c : hint) base += std::isalnum(uint8_t(c)) || c == '-' ? c : '-';
    if (base.empty() || base == "root") base = "r";
    if (base.size() > 48) base.resize(48);
    std::string name = base;
    for (int i = 2; rules_.count(name) || reserved_.count(name); ++i) name = fmt::format("{}-{}", base, i);
    reserved_.insert(name);
    return name;
  }

  std::string ws() { return rule("ws", kWs); }
  std::string string_rule() { return rule("string", std::string("\"\\\"\" ") + kChar + "* \"\\\"\""); }
  std::string value_rule() {
    if (!value_name_.empty()) return value_name_;
    value_name_ = fresh_name("value");
    const std::string w = ws(), s = string_rule(), num = rule("number", kNumber);
    const std::string obj = fresh_name("object"), arr = fresh_name("array");
    rules_[obj] = fmt::format(R"("{{" {0} ( {1} ":" {0} {2} ( "," {0} {1} ":" {0} {2} )* {0} )? "}}")", w, s, value_name_);
    rules_[arr] = fmt::format(R"("[" {0} ( {1} ( "," {0} {1} )* {0} )? "]")", w, value_name_);
    rules_[value_name_] = fmt::format(R"({} | {} | {} | {} | "true" | "false" | "null")", obj, arr, s, num);
    order_.insert(order_.end(), {value_name_, obj, arr});
    return value_name_;
  }

  static std::string literal(const Json& v) { return gbnf_literal(v.dump()); }

  Result<std::string> visit(const Json& s, const std::string& hint, const std::string& path, int depth) {
    if (depth > limits_.max_nesting) return err(path, fmt::format("schema nested deeper than {}", limits_.max_nesting));
    if (s.is_boolean()) {
      if (s.get<bool>()) return value_rule();
      return err(path, "schema 'false' matches nothing");
    }
    if (!s.is_object()) return err(path, "a schema must be an object or a boolean");
    for (auto it = s.begin(); it != s.end(); ++it) {
      if (!kAnnotations.count(it.key()) && !kKnown.count(it.key()))
        return err(path, fmt::format("unsupported keyword '{}'", it.key()));
    }
    auto has = [&](const char* k) { return s.contains(k); };
    if (has("uniqueItems") && s["uniqueItems"] != false) return err(path, "unsupported keyword 'uniqueItems' (true)");
    if (has("$ref")) {
      for (auto it = s.begin(); it != s.end(); ++it)
        if (!kAnnotations.count(it.key()) && it.key() != "$ref")
          return err(path, fmt::format("keyword '{}' beside '$ref' is not supported", it.key()));
      return ref(s["$ref"], path, depth);
    }
    for (const char* comb : {"anyOf", "oneOf", "allOf"}) {
      if (!has(comb)) continue;
      for (auto it = s.begin(); it != s.end(); ++it)
        if (!kAnnotations.count(it.key()) && it.key() != comb)
          return err(path, fmt::format("keyword '{}' beside '{}' is not supported", it.key(), comb));
      const Json& list = s[comb];
      if (!list.is_array() || list.empty()) return err(path, fmt::format("'{}' must be a non-empty array", comb));
      if (std::string(comb) == "allOf") {
        if (list.size() != 1) return err(path, "'allOf' with more than one schema is not supported");
        return visit(list[0], hint, path + "/allOf/0", depth + 1);
      }
      std::string out;
      for (size_t i = 0; i < list.size(); ++i) {
        TERN_ASSIGN_OR_RETURN(std::string e, visit(list[i], hint + "-" + std::to_string(i),
                                                   fmt::format("{}/{}/{}", path, comb, i), depth + 1));
        out += (i ? " | " : "") + e;
      }
      return rule(hint, out);
    }
    if (has("const")) return literal(s["const"]);
    if (has("enum")) {
      const Json& e = s["enum"];
      if (!e.is_array() || e.empty()) return err(path, "'enum' must be a non-empty array");
      std::string out;
      for (size_t i = 0; i < e.size(); ++i) out += (i ? " | " : "") + literal(e[i]);
      return rule(hint, out);
    }
    std::vector<std::string> types;
    if (has("type")) {
      const Json& t = s["type"];
      if (t.is_string()) types.push_back(t.get<std::string>());
      else if (t.is_array())
        for (const Json& x : t) {
          if (!x.is_string()) return err(path, "'type' entries must be strings");
          types.push_back(x.get<std::string>());
        }
      else return err(path, "'type' must be a string or an array");
      if (types.empty()) return err(path, "'type' is an empty array");
    } else if (has("properties") || has("required") || has("additionalProperties")) {
      types = {"object"};
    } else if (has("items") || has("prefixItems") || has("minItems") || has("maxItems")) {
      types = {"array"};
    } else if (has("minLength") || has("maxLength") || has("pattern") || has("format")) {
      types = {"string"};
    } else if (has("minimum") || has("maximum") || has("exclusiveMinimum") || has("exclusiveMaximum")) {
      types = {"number"};
    } else {
      return value_rule();
    }
    std::string out;
    for (size_t i = 0; i < types.size(); ++i) {
      TERN_ASSIGN_OR_RETURN(std::string e, typed(s, types[i], types.size() > 1 ? hint + "-" + types[i] : hint, path, depth));
      out += (i ? " | " : "") + e;
    }
    return types.size() > 1 ? rule(hint, out) : out;
  }

  Result<std::string> ref(const Json& r, const std::string& path, int depth) {
    if (!r.is_string()) return err(path, "'$ref' must be a string");
    const std::string target = r.get<std::string>();
    auto it = refs_.find(target);
    if (it != refs_.end()) return it->second;
    if (target.empty() || target[0] != '#') return err(path, fmt::format("only local '$ref's (#...) are supported, not '{}'", target));
    const Json* node = &root_;
    std::string ptr = target.substr(1);
    if (!ptr.empty()) {
      try {
        node = &root_.at(Json::json_pointer(ptr));
      } catch (const std::exception&) {
        return err(path, fmt::format("'$ref' target '{}' not found", target));
      }
    }
    const std::string name = fresh_name(ptr.empty() ? "root-ref" : ptr.substr(ptr.rfind('/') + 1));
    refs_[target] = name;  // before visiting: recursive references resolve to this rule
    TERN_ASSIGN_OR_RETURN(std::string body, visit(*node, name, "#" + ptr, depth + 1));
    rules_[name] = body;
    order_.push_back(name);
    return name;
  }

  Result<int64_t> count(const Json& s, const char* key, const std::string& path, int64_t dflt) {
    if (!s.contains(key)) return dflt;
    const Json& v = s[key];
    if (!v.is_number_integer() || v.get<int64_t>() < 0) return err(path, fmt::format("'{}' must be a non-negative integer", key));
    if (v.get<int64_t>() > limits_.max_repetition)
      return err(path, fmt::format("'{}' = {} is over the limit of {}", key, v.get<int64_t>(), limits_.max_repetition));
    return v.get<int64_t>();
  }

  static std::string reps(int64_t mn, int64_t mx) {
    if (mx < 0) return mn == 0 ? "*" : mn == 1 ? "+" : fmt::format("{{{},}}", mn);
    if (mn == 0 && mx == 1) return "?";
    return mn == mx ? fmt::format("{{{}}}", mn) : fmt::format("{{{},{}}}", mn, mx);
  }

  Result<std::string> typed(const Json& s, const std::string& type, const std::string& hint, const std::string& path, int depth) {
    if (type == "null") return std::string("\"null\"");
    if (type == "boolean") return std::string("( \"true\" | \"false\" )");
    if (type == "string") return string_type(s, hint, path);
    if (type == "integer") return integer_type(s, hint, path);
    if (type == "number") return number_type(s, hint, path);
    if (type == "array") return array_type(s, hint, path, depth);
    if (type == "object") return object_type(s, hint, path, depth);
    return err(path, fmt::format("unsupported type '{}'", type));
  }

  Result<std::string> string_type(const Json& s, const std::string& hint, const std::string& path) {
    if (s.contains("pattern")) {
      if (s.contains("format") || s.contains("minLength") || s.contains("maxLength"))
        return err(path, "'pattern' together with 'format', 'minLength' or 'maxLength' is not supported");
      if (!s["pattern"].is_string()) return err(path, "'pattern' must be a string");
      auto e = parse_regex(s["pattern"].get<std::string>(), true, limits_);
      if (!e) return err(path, "pattern: " + e.status().message());
      return rule(hint + "-pattern", "\"\\\"\" " + print_expr(*e, {}) + " \"\\\"\"");
    }
    if (s.contains("format")) {
      if (!s["format"].is_string()) return err(path, "'format' must be a string");
      auto it = kFormats.find(s["format"].get<std::string>());
      if (it == kFormats.end()) return err(path, fmt::format("unsupported keyword 'format': '{}'", s["format"].get<std::string>()));
      return rule(it->first, "\"\\\"\" " + it->second + " \"\\\"\"");
    }
    TERN_ASSIGN_OR_RETURN(int64_t mn, count(s, "minLength", path, 0));
    TERN_ASSIGN_OR_RETURN(int64_t mx, count(s, "maxLength", path, -1));
    if (mx >= 0 && mx < mn) return err(path, "'maxLength' < 'minLength'");
    if (mn == 0 && mx < 0) return string_rule();
    return rule(fmt::format("string-{}-{}", mn, mx < 0 ? "inf" : std::to_string(mx)),
                std::string("\"\\\"\" ") + kChar + reps(mn, mx) + " \"\\\"\"");
  }

  Result<std::string> integer_type(const Json& s, const std::string& hint, const std::string& path) {
    int64_t lo = 0, hi = 0;
    bool has_lo = false, has_hi = false;
    for (const char* k : {"minimum", "exclusiveMinimum", "maximum", "exclusiveMaximum"}) {
      if (!s.contains(k)) continue;
      const Json& v = s[k];
      if (!v.is_number() || !std::isfinite(v.get<double>()) || std::fabs(v.get<double>()) > 9e15)
        return err(path, fmt::format("'{}' must be a number within +-9e15", k));
      const double d = v.get<double>();
      const std::string key = k;
      if (key == "minimum" || key == "exclusiveMinimum") {
        const int64_t b = key == "minimum" ? int64_t(std::ceil(d)) : int64_t(std::floor(d)) + 1;
        lo = has_lo ? std::max(lo, b) : b, has_lo = true;
      } else {
        const int64_t b = key == "maximum" ? int64_t(std::floor(d)) : int64_t(std::ceil(d)) - 1;
        hi = has_hi ? std::min(hi, b) : b, has_hi = true;
      }
    }
    if (has_lo && has_hi && lo > hi) return err(path, "integer bounds leave no value");
    const std::string body = integer_range_gbnf(has_lo ? &lo : nullptr, has_hi ? &hi : nullptr);
    if (body.empty()) return err(path, "integer bounds leave no value");
    return rule(has_lo || has_hi ? hint + "-int" : "integer", body);
  }

  // Bounds must be integers (a fractional bound is an error naming the keyword); with bounds, no exponent.
  Result<std::string> number_type(const Json& s, const std::string& hint, const std::string& path) {
    int64_t lo = 0, hi = 0;
    bool has_lo = false, has_hi = false, lo_x = false, hi_x = false;
    for (const char* k : {"minimum", "exclusiveMinimum", "maximum", "exclusiveMaximum"}) {
      if (!s.contains(k)) continue;
      const Json& v = s[k];
      if (!v.is_number() || !std::isfinite(v.get<double>()) || std::fabs(v.get<double>()) > 9e15)
        return err(path, fmt::format("'{}' must be a number within +-9e15", k));
      const double d = v.get<double>();
      if (d != std::floor(d)) return err(path, fmt::format("unsupported keyword '{}' with a fractional bound on a number", k));
      const std::string key = k;
      const bool excl = key[0] == 'e';
      if (key == "minimum" || key == "exclusiveMinimum") {
        if (!has_lo || int64_t(d) > lo || (int64_t(d) == lo && excl)) lo = int64_t(d), lo_x = excl;
        has_lo = true;
      } else {
        if (!has_hi || int64_t(d) < hi || (int64_t(d) == hi && excl)) hi = int64_t(d), hi_x = excl;
        has_hi = true;
      }
    }
    if (!has_lo && !has_hi) return rule("number", kNumber);
    const std::string body = number_range_gbnf(has_lo ? &lo : nullptr, lo_x, has_hi ? &hi : nullptr, hi_x);
    if (body.empty() || (has_lo && has_hi && (lo > hi || (lo == hi && (lo_x || hi_x)))))
      return err(path, "number bounds leave no value");
    return rule(hint + "-num", body);
  }

  Result<std::string> array_type(const Json& s, const std::string& hint, const std::string& path, int depth) {
    TERN_ASSIGN_OR_RETURN(int64_t mn, count(s, "minItems", path, 0));
    TERN_ASSIGN_OR_RETURN(int64_t mx, count(s, "maxItems", path, -1));
    if (mx >= 0 && mx < mn) return err(path, "'maxItems' < 'minItems'");
    std::vector<std::string> prefix;
    if (s.contains("prefixItems")) {
      const Json& p = s["prefixItems"];
      if (!p.is_array()) return err(path, "'prefixItems' must be an array");
      for (size_t i = 0; i < p.size(); ++i) {
        TERN_ASSIGN_OR_RETURN(std::string e, visit(p[i], fmt::format("{}-{}", hint, i), fmt::format("{}/prefixItems/{}", path, i), depth + 1));
        prefix.push_back(e);
      }
    }
    std::string item;  // "" = no further items
    if (!s.contains("items") || s["items"] != false) {
      TERN_ASSIGN_OR_RETURN(item, s.contains("items") ? visit(s["items"], hint + "-item", path + "/items", depth + 1)
                                                      : Result<std::string>(value_rule()));
    }
    const int64_t j = int64_t(prefix.size());
    if (item.empty() && mn > j) return err(path, "'minItems' is more than the items allowed");
    if (mx >= 0 && mx < j) prefix.resize(size_t(mx));
    const std::string w = ws();
    // tail(i): what follows once i elements are present.
    std::string tail;
    const int64_t np = int64_t(prefix.size());
    if (!item.empty() && (mx < 0 || mx > np)) {
      const int64_t extra_min = std::max<int64_t>(mn - np, 0), extra_max = mx < 0 ? -1 : mx - np;
      tail = fmt::format("( \",\" {} {} ){}", w, item, reps(extra_min, extra_max));
    }
    for (int64_t i = np - 1; i >= 1; --i) {  // element i+1 (index i) follows i elements
      std::string t = fmt::format("\",\" {} {} {}", w, prefix[size_t(i)], tail);
      tail = i >= mn ? "( " + t + " )?" : t;
    }
    std::string first;
    if (np > 0) first = prefix[0] + " " + tail;
    else if (!item.empty()) first = item + " " + tail;  // tail counts the items after the first
    if (np == 0 && !item.empty()) {
      const int64_t extra_min = std::max<int64_t>(mn - 1, 0), extra_max = mx < 0 ? -1 : mx - 1;
      if (mx == 0) first.clear();
      else first = fmt::format("{} ( \",\" {} {} ){}", item, w, item, reps(extra_min, extra_max));
    }
    std::string body;
    if (first.empty()) body = fmt::format("\"[\" {} \"]\"", w);
    else if (mn == 0) body = fmt::format("\"[\" {0} ( {1} {0} )? \"]\"", w, first);
    else body = fmt::format("\"[\" {0} {1} {0} \"]\"", w, first);
    return rule(hint, body);
  }

  Result<std::string> object_type(const Json& s, const std::string& hint, const std::string& path, int depth) {
    std::vector<std::string> names, kvs;
    std::vector<bool> req;
    std::set<std::string> required;
    if (s.contains("required")) {
      if (!s["required"].is_array()) return err(path, "'required' must be an array");
      for (const Json& r : s["required"]) {
        if (!r.is_string()) return err(path, "'required' entries must be strings");
        required.insert(r.get<std::string>());
      }
    }
    const std::string w = ws();
    if (s.contains("properties")) {
      const Json& p = s["properties"];
      if (!p.is_object()) return err(path, "'properties' must be an object");
      for (auto it = p.begin(); it != p.end(); ++it) {
        TERN_ASSIGN_OR_RETURN(std::string v, visit(it.value(), hint + "-" + it.key(), path + "/properties/" + it.key(), depth + 1));
        names.push_back(it.key());
        kvs.push_back(fmt::format("{} \":\" {} {}", literal(Json(it.key())), w, v));
        req.push_back(required.count(it.key()) > 0);
      }
    }
    for (const std::string& r : required)
      if (std::find(names.begin(), names.end(), r) == names.end())
        return err(path, fmt::format("required property '{}' is not in 'properties'", r));
    std::string extra;  // the key-value of an additional property, or ""
    if (s.contains("additionalProperties") && s["additionalProperties"] != false) {
      TERN_ASSIGN_OR_RETURN(std::string v, visit(s["additionalProperties"], hint + "-additional", path + "/additionalProperties", depth + 1));
      extra = fmt::format("{} \":\" {} {}", string_rule(), w, v);
    }
    const size_t k = kvs.size();
    // rest[i]: after at least one property, with properties i.. still possible; first[i]: none emitted yet.
    std::vector<std::string> rest(k + 1), first(k + 1);
    rest[k] = extra.empty() ? "" : fmt::format("( \",\" {} {} )*", w, extra);
    first[k] = extra.empty() ? "" : fmt::format("{} {}", extra, rest[k]);
    for (size_t i = k; i-- > 0;) {
      const std::string sp = rest[i + 1].empty() ? "" : " " + rest[i + 1];
      const std::string r = req[i] ? fmt::format("\",\" {} {}{}", w, kvs[i], sp)
                                   : fmt::format("( \",\" {} {} )?{}", w, kvs[i], sp);
      rest[i] = r.size() > 200 ? rule(fmt::format("{}-rest-{}", hint, i), r) : r;
      const std::string f = kvs[i] + sp;
      const std::string fi = req[i] || first[i + 1].empty() ? f : f + " | " + first[i + 1];
      first[i] = fi.size() > 200 ? rule(fmt::format("{}-first-{}", hint, i), fi) : "( " + fi + " )";
    }
    bool any_required = false;
    for (bool b : req) any_required = any_required || b;
    std::string body;
    if (first[0].empty()) body = fmt::format("\"{{\" {} \"}}\"", w);
    else if (any_required) body = fmt::format("\"{{\" {0} {1} {0} \"}}\"", w, first[0]);
    else body = fmt::format("\"{{\" {0} ( {1} {0} )? \"}}\"", w, first[0]);
    return rule(hint, body);
  }

  const Json& root_;
  GrammarLimits limits_;
  std::map<std::string, std::string> rules_;
  std::vector<std::string> order_;
  std::map<std::string, std::string> by_body_;
  std::set<std::string> reserved_ = {"root"};
  std::map<std::string, std::string> refs_;
  std::string value_name_;
};

}  // namespace

Result<std::string> schema_to_gbnf(const Json& schema, const GrammarLimits& limits) {
  return Converter(schema, limits).run();
}

}  // namespace tern::constrain

namespace tern {

Result<std::string> json_schema_to_gbnf(const nlohmann::json& schema, const GrammarLimits& limits) {
  std::string text;
  try {
    text = schema.dump();
  } catch (const std::exception& e) {  // invalid UTF-8 in a string
    return Status::error(std::string("json_schema: ") + e.what());
  }
  return json_schema_text_to_gbnf(text, limits);
}

Result<std::string> json_schema_text_to_gbnf(std::string_view schema_json, const GrammarLimits& limits) {
  if (int64_t(schema_json.size()) > limits.max_text_bytes) return Status::error("json_schema: schema text over the size limit");
  // Nesting is checked by the converter; nlohmann's parser recurses, so bound the depth of the text first.
  int depth = 0, max_depth = 0;
  bool in_string = false, escaped = false;
  for (char c : schema_json) {
    if (in_string) {
      if (escaped) escaped = false;
      else if (c == '\\') escaped = true;
      else if (c == '"') in_string = false;
    } else if (c == '"') {
      in_string = true;
    } else if (c == '{' || c == '[') {
      max_depth = std::max(max_depth, ++depth);
    } else if (c == '}' || c == ']') {
      --depth;
    }
  }
  if (max_depth > 4 * limits.max_nesting) return Status::error(fmt::format("json_schema: nested deeper than {}", 4 * limits.max_nesting));
  auto j = nlohmann::ordered_json::parse(schema_json, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return Status::error("json_schema: the schema is not valid JSON");
  return constrain::schema_to_gbnf(j, limits);
}

}  // namespace tern
