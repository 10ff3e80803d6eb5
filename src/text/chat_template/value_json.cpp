// JSON in and out of the interpreter: the render context (from_json) and the tojson filter (to_json).
#include <cmath>
#include <cstdio>

#include "text/chat_template/budget.h"
#include "text/chat_template/value.h"

namespace tern::jinja {

Value from_json(const nlohmann::ordered_json& j, Budget& bud, int depth) {
  bud.step();
  switch (j.type()) {
    case nlohmann::ordered_json::value_t::null: return Value::none();
    case nlohmann::ordered_json::value_t::boolean: return Value::boolean(j.get<bool>());
    case nlohmann::ordered_json::value_t::number_integer: return Value::integer(j.get<int64_t>());
    case nlohmann::ordered_json::value_t::number_unsigned: {
      const uint64_t u = j.get<uint64_t>();
      // Python ints are unbounded; tern's are 64-bit, so a larger one is kept as a float rather than wrapped.
      return u > uint64_t(INT64_MAX) ? Value::real(double(u)) : Value::integer(int64_t(u));
    }
    case nlohmann::ordered_json::value_t::number_float: return Value::real(j.get<double>());
    case nlohmann::ordered_json::value_t::string: {
      const std::string& s = j.get_ref<const std::string&>();
      bud.built(s.size());
      return Value::str(s);
    }
    case nlohmann::ordered_json::value_t::array: {
      bud.value_depth(depth + 1);
      bud.list_size(j.size());
      ValueList items;
      items.reserve(j.size());
      for (auto& e : j) items.push_back(from_json(e, bud, depth + 1));
      return Value::make_list(std::move(items));
    }
    case nlohmann::ordered_json::value_t::object: {
      bud.value_depth(depth + 1);
      bud.list_size(j.size());
      Value d = Value::make_dict();
      for (auto it = j.begin(); it != j.end(); ++it) d.dict->append_new(it.key(), from_json(it.value(), bud, depth + 1));
      return d;
    }
    default: return Value();
  }
}

static std::string json_string(const std::string& s) {
  // JSON.stringify: escape quotes, backslash and control characters; UTF-8 passes through.
  std::string out = "\"";
  for (unsigned char c : s) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      case '\b': out += "\\b"; break;
      case '\f': out += "\\f"; break;
      default:
        if (c < 0x20) {
          char buf[8];
          std::snprintf(buf, sizeof buf, "\\u%04x", c);
          out += buf;
        } else {
          out += char(c);
        }
    }
  }
  return out + "\"";
}

std::string to_json(const Value& v, int indent, Budget& bud, int depth) {
  bud.step();
  switch (v.kind) {
    case Value::Kind::Undefined: case Value::Kind::None: return "null";
    case Value::Kind::Bool: return v.b ? "true" : "false";
    case Value::Kind::Int: return std::to_string(v.i);
    case Value::Kind::Float: {
      if (v.f == std::floor(v.f) && std::fabs(v.f) < 1e16) return std::to_string(int64_t(v.f));
      return float_str(v.f);
    }
    case Value::Kind::String:
      bud.string_size(v.s.size() + 2);
      bud.bytes(v.s.size());
      return json_string(v.s);
    case Value::Kind::Callable: throw TemplateError("tojson: cannot serialize a function");
    default: break;
  }
  bud.value_depth(depth + 1);
  // Indentation grows with depth: its size is checked before it is built.
  const size_t unit_size = indent > 0 ? size_t(indent) : 0;
  bud.string_size(unit_size * size_t(depth + 2));
  std::string unit(unit_size, ' ');
  std::string base = "\n";
  for (int k = 0; k < depth; ++k) base += unit;
  std::string child = base + unit;
  // Pretty lists open with a newline and put one before each further element; pretty dict parts carry theirs.
  std::string out = v.is_list() ? (indent > 0 ? "[" + child : "[") : "{";
  size_t k = 0;
  auto add = [&](const std::string& part) {
    const std::string sep = indent > 0 ? (k ? (v.is_list() ? "," + child : ",") : "") : (k ? ", " : "");
    bud.append(out, sep);
    bud.append(out, part);
    ++k;
  };
  if (v.is_list()) {
    for (auto& e : *v.list) add(to_json(e, indent, bud, depth + 1));
  } else {
    for (auto& [key, e] : v.dict->items) {
      std::string p = json_string(key) + ": " + to_json(e, indent, bud, depth + 1);
      add(indent > 0 ? child + p : p);
    }
  }
  if (indent > 0) bud.append(out, base);
  return out + (v.is_list() ? "]" : "}");
}

}  // namespace tern::jinja
