// Constrained-decoding request fields: see constraint_request.h.
#include "api/constraint_request.h"

#include <cctype>
#include <set>

#include "api/json_fields.h"
#include "constrain/text_without.h"
#include "constrain/token_constraint.h"

namespace tern::api {
namespace {

using json = nlohmann::ordered_json;

std::optional<ApiError> parse_response_format(const json& v, ConstraintSpec& c) {
  if (!v.is_object()) return bad_param("response_format", "'response_format' must be an object");
  auto type = v.find("type");
  if (type == v.end() || !type->is_string()) {
    return bad_param("response_format.type", "'response_format.type' must be \"text\", \"json_object\" or \"json_schema\"");
  }
  const std::string t = type->get<std::string>();
  auto only = [&](std::initializer_list<const char*> keys) -> std::optional<ApiError> {
    for (const auto& [key, x] : v.items()) {
      bool ok = false;
      for (const char* k : keys) ok = ok || key == k;
      if (!ok) return bad_param("response_format." + key, "Unrecognized field response_format." + key);
    }
    return std::nullopt;
  };
  if (t == "text") return only({"type"});
  if (t == "json_object") {
    if (auto e = only({"type"})) return e;
    c.kind = ConstraintSpec::Kind::kJsonObject;
    c.param = "response_format";
    return std::nullopt;
  }
  if (t != "json_schema") {
    return bad_param("response_format.type", "'response_format.type' must be \"text\", \"json_object\" or "
                                             "\"json_schema\", got \"" + t + "\"");
  }
  if (auto e = only({"type", "json_schema"})) return e;
  auto js = v.find("json_schema");
  if (js == v.end() || !js->is_object()) {
    return bad_param("response_format.json_schema", "'response_format.json_schema' must be an object");
  }
  for (const auto& [key, x] : js->items()) {
    const std::string p = "response_format.json_schema." + key;
    if (key == "name" || key == "description") {
      if (!x.is_string()) return bad_param(p, "'" + p + "' must be a string");
    } else if (key == "strict") {
      if (!x.is_boolean() && !x.is_null()) return bad_param(p, "'" + p + "' must be a boolean");
    } else if (key == "schema") {
      if (!x.is_object() && !x.is_boolean()) return bad_param(p, "'" + p + "' must be a JSON Schema object");
    } else {
      return bad_param(p, "Unrecognized field " + p);
    }
  }
  if (!js->contains("schema")) {
    return bad_param("response_format.json_schema.schema", "'response_format.json_schema.schema' is required");
  }
  // strict false is constrained too: tern either guarantees the schema or says it cannot (a 400).
  c.kind = ConstraintSpec::Kind::kJsonSchema;
  c.schema = (*js)["schema"];
  c.param = "response_format.json_schema.schema";
  return std::nullopt;
}

// GBNF rule names in `text` (one `name ::= body` per line, as json_schema_to_gbnf writes them) prefixed
// with `prefix`, definitions and references alike; literals and character classes are left alone.
std::string rename_rules(const std::string& text, const std::string& prefix) {
  std::set<std::string> names;
  for (size_t at = 0; at < text.size();) {
    const size_t eol = text.find('\n', at);
    const std::string line = text.substr(at, eol == std::string::npos ? std::string::npos : eol - at);
    const size_t def = line.find(" ::= ");
    if (def != std::string::npos) names.insert(line.substr(0, def));
    at = eol == std::string::npos ? text.size() : eol + 1;
  }
  auto ident = [](char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_'; };
  std::string out;
  for (size_t i = 0; i < text.size();) {
    const char c = text[i];
    if (c == '"' || c == '[') {  // copy a literal or class, escapes included
      const char close = c == '"' ? '"' : ']';
      size_t j = i + 1;
      while (j < text.size() && text[j] != close) j += text[j] == '\\' ? 2 : 1;
      out.append(text, i, j + 1 - i);
      i = j + 1;
    } else if (ident(c)) {
      size_t j = i;
      while (j < text.size() && ident(text[j])) ++j;
      const std::string word = text.substr(i, j - i);
      out += names.count(word) ? prefix + word : word;
      i = j;
    } else {
      out += c;
      ++i;
    }
  }
  return out;
}

}  // namespace

namespace {

// "tc-call ::= <alternatives>\n" + each tool's schema rules renamed apart (tI-): the exact text the
// template shows the model, `open{"name": "<tool>", "<args_key>": <its schema> <after_args>}close` (names are
// [A-Za-z0-9_-], no escaping; after_args is GBNF, e.g. an optional id field).
Result<std::string> call_rules(const ToolFields& tf, const std::function<Result<std::string>(const json&)>& schema_gbnf,
                               const std::string& open, const std::string& args_key, const std::string& close,
                               const std::string& after_args = "") {
  std::string calls, defs;
  for (size_t i = 0; i < tf.tools.size(); ++i) {
    const json& fn = tf.tools[i]["function"];
    TERN_ASSIGN_OR_RETURN(std::string schema, schema_gbnf(fn["parameters"]));
    const std::string prefix = "t" + std::to_string(i) + "-";
    defs += rename_rules(schema, prefix);
    calls += std::string(i ? " | " : "") + "\"" + open + "{\\\"name\\\": \\\"" + fn["name"].get<std::string>() +
             "\\\", \\\"" + args_key + "\\\": \" " + prefix + "root " + after_args + (after_args.empty() ? "" : " ") +
             "\"}" + close + "\"";
  }
  return "tc-call ::= " + calls + "\n" + defs;
}

// Mistral v11: `name<args>{...}` per tool (args: the [ARGS] terminal).
Result<std::string> name_args_rules(const ToolFields& tf,
                                    const std::function<Result<std::string>(const json&)>& schema_gbnf,
                                    const std::string& args) {
  std::string calls, defs;
  for (size_t i = 0; i < tf.tools.size(); ++i) {
    const json& fn = tf.tools[i]["function"];
    TERN_ASSIGN_OR_RETURN(std::string schema, schema_gbnf(fn["parameters"]));
    const std::string prefix = "t" + std::to_string(i) + "-";
    defs += rename_rules(schema, prefix);
    calls += std::string(i ? " | " : "") + "\"" + fn["name"].get<std::string>() + "\" " + args + " " + prefix + "root";
  }
  return "tc-call ::= " + calls + "\n" + defs;
}

// An ASCII character as a GBNF escape (safe inside literals and classes alike).
std::string esc(char c) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  return std::string("\\x") + kHex[uint8_t(c) >> 4] + kHex[uint8_t(c) & 15];
}

}  // namespace

Result<std::string> hermes_auto_gbnf(const ToolFields& tf,
                                     const std::function<Result<std::string>(const json&)>& schema_gbnf) {
  // Free text that never contains "<tool_call>" (one rule without calls: its masks are shared by every request).
  std::string g = "root ::= tc-text tc-calls?\n";
  g += "tc-text ::= " + text_without("<tool_call>") + "\n";
  g += tf.parallel ? "tc-calls ::= tc-call ( \"\\n\" tc-call )*\n" : "tc-calls ::= tc-call\n";
  TERN_ASSIGN_OR_RETURN(std::string calls, call_rules(tf, schema_gbnf, "<tool_call>\\n", "arguments", "\\n</tool_call>"));
  return g + calls;
}

std::string text_without(std::string_view marker) { return constrain::text_without(marker); }

Result<std::string> mistral_auto_gbnf(const ToolFields& tf,
                                      const std::function<Result<std::string>(const json&)>& schema_gbnf,
                                      const TokenVocabulary& vocab, bool name_args) {
  // [TOOL_CALLS] (and v11's [ARGS]) as the special token where the vocabulary has one, else as text. Free text
  // never spells "[TOOL_CALLS]" either: the reply parser reads the decoded text, where the token and its spelling
  // look the same, so only the token may start calls and the parser and the grammar agree.
  auto terminal = [&](std::string_view text) {
    auto id = vocab.special_token(text);
    std::string lit = "\"";
    for (char c : text) lit += esc(c);
    return id ? "<[" + std::to_string(*id) + "]>" : lit + "\"";
  };
  const std::string tc = terminal("[TOOL_CALLS]");
  std::string g = "root ::= mt-text ( " + tc + " mt-calls )?\n";
  g += "mt-text ::= " + text_without("[TOOL_CALLS]") + "\n";
  std::string calls;
  if (name_args) {  // [TOOL_CALLS]name[ARGS]{...}, each call after its own [TOOL_CALLS]
    g += tf.parallel ? "mt-calls ::= tc-call ( " + tc + " tc-call )*\n" : "mt-calls ::= tc-call\n";
    TERN_ASSIGN_OR_RETURN(calls, name_args_rules(tf, schema_gbnf, terminal("[ARGS]")));
  } else {  // [TOOL_CALLS] [{"name": ..., "arguments": {...}, "id": "<9 alphanumerics>"?}, ...] (v0.3's template)
    g += tf.parallel ? "mt-calls ::= \" \"? \"[\" tc-call ( \", \" tc-call )* \"]\"\n" : "mt-calls ::= \" \"? \"[\" tc-call \"]\"\n";
    g += "mt-id ::= \", \\\"id\\\": \\\"\" [a-zA-Z0-9]{9} \"\\\"\"\n";
    TERN_ASSIGN_OR_RETURN(calls, call_rules(tf, schema_gbnf, "", "arguments", "", "mt-id?"));
  }
  return g + calls;
}

Result<std::string> llama3_auto_gbnf(const ToolFields& tf,
                                     const std::function<Result<std::string>(const json&)>& schema_gbnf) {
  // A reply whose first non-space character is "{" is a call (the parser reads it so), so text may not
  // start with one; calls are the template's JSON form, several joined by "; ".
  std::string g = "root ::= [ \\t\\n]* ( tc-calls | tc-text )?\n";
  g += "tc-text ::= [^{ \\t\\n] .*\n";
  g += tf.parallel ? "tc-calls ::= tc-call ( \"; \" tc-call )*\n" : "tc-calls ::= tc-call\n";
  TERN_ASSIGN_OR_RETURN(std::string calls, call_rules(tf, schema_gbnf, "", "parameters", ""));
  return g + calls;
}

std::optional<ApiError> parse_constraint_fields(Endpoint endpoint, const json& body, OpenAiRequest& r) {
  ConstraintSpec& c = r.constraint;
  int given = 0;
  std::string first;
  for (const char* key : {"response_format", "grammar", "regex"}) {
    auto it = body.find(key);
    if (it == body.end() || it->is_null()) continue;
    if (std::string(key) == "response_format") {
      if (endpoint != Endpoint::kChat) continue;  // openai_fields.cpp answers it on /v1/completions
      ConstraintSpec spec;
      if (auto e = parse_response_format(*it, spec)) return e;
      if (spec.kind == ConstraintSpec::Kind::kNone) continue;  // {"type": "text"}
      c = std::move(spec);
    } else {
      if (!it->is_string() || it->get<std::string>().empty()) {
        return bad_param(key, std::string("'") + key + "' must be a non-empty string");
      }
      c.kind = std::string(key) == "grammar" ? ConstraintSpec::Kind::kGbnf : ConstraintSpec::Kind::kRegex;
      c.text = it->get<std::string>();
      c.param = key;
    }
    if (given++) return bad_param(key, "'" + std::string(key) + "' and '" + first + "' cannot both constrain one request");
    first = key;
  }
  if (c.kind != ConstraintSpec::Kind::kNone && r.tools.choice != ToolChoice::kNone) {
    return bad_param(c.param, "'" + first + "' cannot be combined with tools (unless tool_choice is \"none\"): tool "
                                            "calls are constrained by the tools' own schemas");
  }
  return std::nullopt;
}

json forced_tool_schema(const ToolFields& tf) {
  if (tf.choice == ToolChoice::kNamed) {
    for (const json& t : tf.tools) {
      if (t["function"]["name"] == tf.named) return t["function"]["parameters"];
    }
  }
  json any = json::array();
  for (const json& t : tf.tools) {
    any.push_back({{"type", "object"},
                   {"properties", {{"name", {{"const", t["function"]["name"]}}}, {"parameters", t["function"]["parameters"]}}},
                   {"required", {"name", "parameters"}},
                   {"additionalProperties", false}});
  }
  json items = any.size() == 1 ? any[0] : json{{"anyOf", any}};
  json schema = {{"type", "array"}, {"items", items}, {"minItems", 1}};
  if (!tf.parallel) schema["maxItems"] = 1;
  return schema;
}

std::variant<std::shared_ptr<const Grammar>, ApiError> compile_request_grammar(GrammarCache& cache,
                                                                             const OpenAiRequest& r,
                                                                             const ChatFormat& auto_format) {
  if (auto_constrained(auto_format.tool_calls) && r.tools.choice == ToolChoice::kAuto) {
    for (size_t i = 0; i < r.tools.tools.size(); ++i) {  // an unsupported keyword names its tool
      const std::string p = "tools[" + std::to_string(i) + "].function.parameters";
      auto one = json_schema_to_gbnf(r.tools.tools[i]["function"]["parameters"]);
      if (!one.is_ok()) return bad_param(p, "'" + p + "': " + one.status().message());
    }
    auto schema_gbnf = [](const json& s) { return json_schema_to_gbnf(s); };
    auto text = auto_format.tool_calls == ToolCallFormat::kHermes ? hermes_auto_gbnf(r.tools, schema_gbnf)
                : auto_format.tool_calls == ToolCallFormat::kLlama3
                    ? llama3_auto_gbnf(r.tools, schema_gbnf)
                    : mistral_auto_gbnf(r.tools, schema_gbnf, cache.vocabulary(), auto_format.mistral_name_args);
    if (!text.is_ok()) return bad_param("tools", "'tools': " + text.status().message());
    auto g = cache.gbnf(text.value());
    if (!g.is_ok()) return bad_param("tools", "'tools': " + g.status().message());
    return std::move(g).value();
  }
  const ConstraintSpec& c = r.constraint;
  Result<std::shared_ptr<const Grammar>> g = std::shared_ptr<const Grammar>();
  std::string param = c.param;
  if (r.tools.choice == ToolChoice::kRequired || r.tools.choice == ToolChoice::kNamed) {
    // Each tool's schema alone first, so that an unsupported keyword names its tool.
    for (size_t i = 0; i < r.tools.tools.size(); ++i) {
      const json& fn = r.tools.tools[i]["function"];
      if (r.tools.choice == ToolChoice::kNamed && fn["name"] != r.tools.named) continue;
      auto one = cache.json_schema(fn["parameters"]);
      const std::string p = "tools[" + std::to_string(i) + "].function.parameters";
      if (!one.is_ok()) return bad_param(p, "'" + p + "': " + one.status().message());
      param = p;
    }
    if (r.tools.choice == ToolChoice::kRequired) param = "tools";
    g = cache.json_schema(forced_tool_schema(r.tools));
  } else {
    switch (c.kind) {
      case ConstraintSpec::Kind::kJsonObject:
        g = cache.json_object();
        break;
      case ConstraintSpec::Kind::kJsonSchema:
        g = cache.json_schema(c.schema);
        break;
      case ConstraintSpec::Kind::kGbnf:
        g = cache.gbnf(c.text);
        break;
      case ConstraintSpec::Kind::kRegex:
        g = cache.regex(c.text);
        break;
      case ConstraintSpec::Kind::kNone:
        return std::shared_ptr<const Grammar>();
    }
  }
  if (!g.is_ok()) return bad_param(param, "'" + param + "': " + g.status().message());
  return std::move(g).value();
}

}  // namespace tern::api
