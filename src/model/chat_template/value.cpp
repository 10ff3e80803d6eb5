#include "model/chat_template/value.h"

#include <cmath>
#include <cstdio>

namespace tern::jinja {

Value* Dict::find(const std::string& key) {
  for (auto& [k, v] : items)
    if (k == key) return &v;
  return nullptr;
}

void Dict::set(const std::string& key, Value v) {
  if (Value* slot = find(key)) {
    *slot = std::move(v);
  } else {
    items.emplace_back(key, std::move(v));
  }
}

Value Value::make_list(ValueList items) {
  Value v;
  v.kind = Kind::List;
  v.list = std::make_shared<ValueList>(std::move(items));
  return v;
}

Value Value::make_dict() {
  Value v;
  v.kind = Kind::Dict;
  v.dict = std::make_shared<Dict>();
  return v;
}

Value Value::callable(NativeFn f) {
  Value v;
  v.kind = Kind::Callable;
  v.fn = std::make_shared<NativeFn>(std::move(f));
  return v;
}

bool Value::truthy() const {
  switch (kind) {
    case Kind::Undefined: case Kind::None: return false;
    case Kind::Bool: return b;
    case Kind::Int: return i != 0;
    case Kind::Float: return f != 0;
    case Kind::String: return !s.empty();
    case Kind::List: return !list->empty();
    case Kind::Dict: return is_namespace || !dict->items.empty();
    case Kind::Callable: return true;
  }
  return false;
}

static std::string float_str(double f) {
  if (std::isfinite(f) && f == std::floor(f) && std::fabs(f) < 1e16) {
    char buf[64];
    std::snprintf(buf, sizeof buf, "%.1f", f);
    return buf;
  }
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.17g", f);
  // Shortest form that round-trips, like Python's repr.
  for (int p = 1; p <= 17; ++p) {
    std::snprintf(buf, sizeof buf, "%.*g", p, f);
    if (std::strtod(buf, nullptr) == f) break;
  }
  return buf;
}

std::string Value::to_str() const {
  switch (kind) {
    case Kind::Undefined: return "";
    case Kind::None: return "None";
    case Kind::Bool: return b ? "True" : "False";
    case Kind::Int: return std::to_string(i);
    case Kind::Float: return float_str(f);
    case Kind::String: return s;
    default: return repr();
  }
}

std::string Value::repr() const {
  switch (kind) {
    case Kind::String: {
      std::string out = "'";
      for (char c : s) {
        if (c == '\'') out += "\\'";
        else if (c == '\\') out += "\\\\";
        else if (c == '\n') out += "\\n";
        else out += c;
      }
      return out + "'";
    }
    case Kind::List: {
      std::string out = "[";
      for (size_t k = 0; k < list->size(); ++k) out += (k ? ", " : "") + (*list)[k].repr();
      return out + "]";
    }
    case Kind::Dict: {
      std::string out = "{";
      bool first = true;
      for (auto& [k, v] : dict->items) {
        out += (first ? "'" : ", '") + k + "': " + v.repr();
        first = false;
      }
      return out + "}";
    }
    case Kind::Callable: return "<function>";
    default: return to_str();
  }
}

const char* Value::type_name() const {
  switch (kind) {
    case Kind::Undefined: return "undefined";
    case Kind::None: return "none";
    case Kind::Bool: return "bool";
    case Kind::Int: return "int";
    case Kind::Float: return "float";
    case Kind::String: return "string";
    case Kind::List: return "list";
    case Kind::Dict: return is_namespace ? "namespace" : "dict";
    case Kind::Callable: return "function";
  }
  return "?";
}

bool values_equal(const Value& a, const Value& b) {
  using K = Value::Kind;
  if ((a.is_number() || a.kind == K::Bool) && (b.is_number() || b.kind == K::Bool) &&
      (a.kind != K::Bool) == (b.kind != K::Bool))
    return a.as_double() == b.as_double();
  if (a.kind != b.kind) return false;
  switch (a.kind) {
    case K::Undefined: case K::None: return true;
    case K::Bool: return a.b == b.b;
    case K::String: return a.s == b.s;
    case K::List:
      if (a.list->size() != b.list->size()) return false;
      for (size_t k = 0; k < a.list->size(); ++k)
        if (!values_equal((*a.list)[k], (*b.list)[k])) return false;
      return true;
    case K::Dict:
      if (a.dict->items.size() != b.dict->items.size()) return false;
      for (auto& [k, v] : a.dict->items) {
        Value* o = b.dict->find(k);
        if (!o || !values_equal(v, *o)) return false;
      }
      return true;
    default: return a.fn == b.fn;
  }
}

int compare_values(const Value& a, const Value& b) {
  if ((a.is_number() || a.kind == Value::Kind::Bool) && (b.is_number() || b.kind == Value::Kind::Bool)) {
    double x = a.as_double(), y = b.as_double();
    return x < y ? -1 : x > y ? 1 : 0;
  }
  if (a.is_string() && b.is_string()) return a.s < b.s ? -1 : a.s > b.s ? 1 : 0;
  if (a.is_list() && b.is_list()) {
    for (size_t k = 0; k < a.list->size() && k < b.list->size(); ++k)
      if (int c = compare_values((*a.list)[k], (*b.list)[k])) return c;
    return a.list->size() < b.list->size() ? -1 : a.list->size() > b.list->size() ? 1 : 0;
  }
  throw TemplateError(std::string("cannot compare ") + a.type_name() + " with " + b.type_name());
}

Value from_json(const nlohmann::json& j) {
  switch (j.type()) {
    case nlohmann::json::value_t::null: return Value::none();
    case nlohmann::json::value_t::boolean: return Value::boolean(j.get<bool>());
    case nlohmann::json::value_t::number_integer: return Value::integer(j.get<int64_t>());
    case nlohmann::json::value_t::number_unsigned: return Value::integer(int64_t(j.get<uint64_t>()));
    case nlohmann::json::value_t::number_float: return Value::real(j.get<double>());
    case nlohmann::json::value_t::string: return Value::str(j.get<std::string>());
    case nlohmann::json::value_t::array: {
      ValueList items;
      for (auto& e : j) items.push_back(from_json(e));
      return Value::make_list(std::move(items));
    }
    case nlohmann::json::value_t::object: {
      Value d = Value::make_dict();
      for (auto it = j.begin(); it != j.end(); ++it) d.dict->set(it.key(), from_json(it.value()));
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

std::string to_json(const Value& v, int indent, int depth) {
  switch (v.kind) {
    case Value::Kind::Undefined: case Value::Kind::None: return "null";
    case Value::Kind::Bool: return v.b ? "true" : "false";
    case Value::Kind::Int: return std::to_string(v.i);
    case Value::Kind::Float: {
      if (v.f == std::floor(v.f) && std::fabs(v.f) < 1e16) return std::to_string(int64_t(v.f));
      return float_str(v.f);
    }
    case Value::Kind::String: return json_string(v.s);
    case Value::Kind::Callable: throw TemplateError("tojson: cannot serialize a function");
    default: break;
  }
  std::string unit(indent > 0 ? size_t(indent) : 0, ' ');
  std::string base = "\n";
  for (int k = 0; k < depth; ++k) base += unit;
  std::string child = base + unit;
  std::vector<std::string> parts;
  if (v.is_list()) {
    for (auto& e : *v.list) parts.push_back(to_json(e, indent, depth + 1));
  } else {
    for (auto& [k, e] : v.dict->items) {
      std::string p = json_string(k) + ": " + to_json(e, indent, depth + 1);
      parts.push_back(indent > 0 ? child + p : p);
    }
  }
  std::string out = v.is_list() ? "[" : "{";
  if (indent > 0) {
    if (v.is_list()) {
      out += child;
      for (size_t k = 0; k < parts.size(); ++k) out += (k ? "," + child : "") + parts[k];
    } else {
      for (size_t k = 0; k < parts.size(); ++k) out += (k ? "," : "") + parts[k];
    }
    out += base;
  } else {
    for (size_t k = 0; k < parts.size(); ++k) out += (k ? ", " : "") + parts[k];
  }
  return out + (v.is_list() ? "]" : "}");
}

ValueList iterate(const Value& v) {
  if (v.is_list()) return *v.list;
  if (v.is_dict()) {
    ValueList keys;
    for (auto& kv : v.dict->items) keys.push_back(Value::str(kv.first));
    return keys;
  }
  if (v.is_string()) {
    ValueList chars;
    for (size_t k = 0; k < v.s.size();) {
      unsigned char c = v.s[k];
      size_t n = c < 0x80 ? 1 : c < 0xE0 ? 2 : c < 0xF0 ? 3 : 4;
      chars.push_back(Value::str(v.s.substr(k, n)));
      k += n;
    }
    return chars;
  }
  if (v.is_undefined()) return {};
  throw TemplateError(std::string("cannot iterate over ") + v.type_name());
}

}  // namespace tern::jinja
