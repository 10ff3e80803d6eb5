// Runtime values of the chat-template interpreter: the Jinja/Python object model reduced to what
// chat templates touch (undefined, none, bool, int, float, str, list, dict, namespace, callables).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <stdexcept>
#include <string>
#include <unordered_map>
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
class Budget;  // budget.h: the limits every walker below charges
using ValueList = std::vector<Value>;
using KwArgs = std::vector<std::pair<std::string, Value>>;
using NativeFn = std::function<Value(ValueList& args, KwArgs& kwargs)>;

// Insertion-ordered string-keyed map (Python dicts keep insertion order; JSON objects arrive ordered). Past a
// few keys a hash index keeps lookups O(1): a request's tool schema may hold thousands of properties.
struct Dict {
  std::vector<std::pair<std::string, Value>> items;
  Value* find(const std::string& key);
  void set(const std::string& key, Value v);
  // Appends a key known not to be present yet (a JSON object's keys are unique).
  void append_new(const std::string& key, Value v);
  void clear();

 private:
  void index_last();
  std::unordered_map<std::string, size_t> index_;  // key -> position in items; empty while items are few
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

  Value() = default;
  Value(const Value&) = default;
  Value(Value&&) noexcept = default;
  Value& operator=(const Value& o) {
    Value copy(o);
    swap(copy);
    return *this;
  }
  Value& operator=(Value&& o) noexcept {
    Value moved(std::move(o));
    swap(moved);
    return *this;
  }
  // Releases nested lists and dicts with an explicit work list instead of recursion, so a value nested a
  // million deep (`{% set ns.x = [ns.x] %}` in a loop) cannot overflow the stack when it dies.
  ~Value() {
    if ((list && list.use_count() == 1) || (dict && dict.use_count() == 1)) release_nested();
  }
  void swap(Value& o) noexcept;

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
  std::string to_str(Budget& b) const;              // what {{ x }} prints
  std::string repr(Budget& b, int depth = 0) const;  // Python repr, used inside printed containers
  const char* type_name() const;

 private:
  void release_nested();
};

// The walkers below charge `b` per node and stop at its value-depth bound (values can share parts, so a
// small value may be a huge tree to walk).
bool values_equal(const Value& a, const Value& b, Budget& budget, int depth = 0);
// A float as Python prints it ("1.0", "0.1", "1e+20").
std::string float_str(double f);
// <0, 0, >0; throws TemplateError for incomparable kinds.
int compare_values(const Value& a, const Value& b, Budget& budget, int depth = 0);

// value_json.cpp
Value from_json(const nlohmann::ordered_json& j, Budget& b, int depth = 0);
// tojson as @huggingface/jinja writes it (", " / ": " separators, no ASCII escaping; indent > 0 pretty).
std::string to_json(const Value& v, int indent, Budget& b, int depth = 0);

// Items to iterate: list elements, dict keys, string characters.
ValueList iterate(const Value& v, Budget& b);
// Number of items iterate() would give, without building them.
size_t iterate_count(const Value& v);

}  // namespace tern::jinja
