// Runtime values of the chat-template interpreter: the Jinja/Python object model reduced to what
// chat templates touch (undefined, none, bool, int, float, str, list, dict, namespace, callables).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

namespace tern::jinja {

// Runtime errors travel as exceptions inside the interpreter only; ChatTemplate::render turns them
// into a Status at its boundary.
struct TemplateError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

struct Value;
using ValueList = std::vector<Value>;
using KwArgs = std::vector<std::pair<std::string, Value>>;
using NativeFn = std::function<Value(ValueList& args, KwArgs& kwargs)>;

// Insertion-ordered string-keyed map (Python dicts keep insertion order; JSON objects arrive ordered).
struct Dict {
  std::vector<std::pair<std::string, Value>> items;
  Value* find(const std::string& key);
  void set(const std::string& key, Value v);
};

struct Value {
  enum class Kind { Undefined, None, Bool, Int, Float, String, List, Dict, Callable };
  Kind kind = Kind::Undefined;
  bool b = false;
  int64_t i = 0;
  double f = 0;
  std::string s;
  std::shared_ptr<ValueList> list;
  std::shared_ptr<Dict> dict;
  std::shared_ptr<NativeFn> fn;
  bool is_namespace = false;

  static Value none() { Value v; v.kind = Kind::None; return v; }
  static Value boolean(bool x) { Value v; v.kind = Kind::Bool; v.b = x; return v; }
  static Value integer(int64_t x) { Value v; v.kind = Kind::Int; v.i = x; return v; }
  static Value real(double x) { Value v; v.kind = Kind::Float; v.f = x; return v; }
  static Value str(std::string x) { Value v; v.kind = Kind::String; v.s = std::move(x); return v; }
  static Value make_list(ValueList items = {});
  static Value make_dict();
  static Value callable(NativeFn f);

  bool is_undefined() const { return kind == Kind::Undefined; }
  bool is_none() const { return kind == Kind::None; }
  bool is_number() const { return kind == Kind::Int || kind == Kind::Float; }
  bool is_string() const { return kind == Kind::String; }
  bool is_list() const { return kind == Kind::List; }
  bool is_dict() const { return kind == Kind::Dict; }
  double as_double() const { return kind == Kind::Int ? double(i) : kind == Kind::Bool ? double(b) : f; }

  bool truthy() const;
  std::string to_str() const;   // what {{ x }} prints
  std::string repr() const;     // Python repr, used inside printed containers
  const char* type_name() const;
};

bool values_equal(const Value& a, const Value& b);
// <0, 0, >0; throws TemplateError for incomparable kinds.
int compare_values(const Value& a, const Value& b);

Value from_json(const nlohmann::json& j);
// tojson as @huggingface/jinja writes it (", " / ": " separators, no ASCII escaping; indent > 0 pretty).
std::string to_json(const Value& v, int indent, int depth = 0);

// Items to iterate: list elements, dict keys, string characters.
ValueList iterate(const Value& v);

}  // namespace tern::jinja
