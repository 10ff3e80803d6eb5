#include "text/chat_template/value.h"

#include <cmath>
#include <cstdio>

#include "text/chat_template/budget.h"

namespace tern::jinja {

namespace {
constexpr size_t kIndexFrom = 16;  // dicts with this many keys get a hash index
}  // namespace

Value* Dict::find(const std::string& key) {
  if (!index_.empty()) {
    auto it = index_.find(key);
    return it == index_.end() ? nullptr : &items[it->second].second;
  }
  for (auto& [k, v] : items)
    if (k == key) return &v;
  return nullptr;
}

void Dict::set(const std::string& key, Value v) {
  if (Value* slot = find(key)) {
    *slot = std::move(v);
  } else {
    append_new(key, std::move(v));
  }
}

void Dict::append_new(const std::string& key, Value v) {
  items.emplace_back(key, std::move(v));
  index_last();
}

void Dict::index_last() {
  if (items.size() < kIndexFrom) return;
  if (index_.empty()) {
    for (size_t k = 0; k < items.size(); ++k) index_.emplace(items[k].first, k);
  } else {
    index_.emplace(items.back().first, items.size() - 1);
  }
}

void Dict::clear() {
  index_.clear();
  items.clear();
}

void Value::swap(Value& o) noexcept {
  std::swap(kind, o.kind);
  std::swap(b, o.b);
  std::swap(i, o.i);
  std::swap(f, o.f);
  s.swap(o.s);
  list.swap(o.list);
  dict.swap(o.dict);
  fn.swap(o.fn);
  std::swap(is_namespace, o.is_namespace);
}

void Value::release_nested() {
  // Every container met is moved onto a work list; one whose last owner is the work list has its items' containers
  // moved out before it dies, so no destructor below this one nests.
  std::vector<std::shared_ptr<ValueList>> lists;
  std::vector<std::shared_ptr<Dict>> dicts;
  auto take = [&](Value& v) {
    if (v.list) lists.push_back(std::move(v.list));
    if (v.dict) dicts.push_back(std::move(v.dict));
  };
  take(*this);
  while (!lists.empty() || !dicts.empty()) {
    if (!lists.empty()) {
      std::shared_ptr<ValueList> l = std::move(lists.back());
      lists.pop_back();
      if (l.use_count() == 1)
        for (Value& x : *l) take(x);
    } else {
      std::shared_ptr<Dict> d = std::move(dicts.back());
      dicts.pop_back();
      if (d.use_count() == 1)
        for (auto& kv : d->items) take(kv.second);
    }
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

std::string float_str(double f) {
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

std::string Value::to_str(Budget& bud) const {
  switch (kind) {
    case Kind::Undefined: return "";
    case Kind::None: return "None";
    case Kind::Bool: return b ? "True" : "False";
    case Kind::Int: return std::to_string(i);
    case Kind::Float: return float_str(f);
    case Kind::String: return s;
    default: return repr(bud);
  }
}

std::string Value::repr(Budget& bud, int depth) const {
  bud.step();
  switch (kind) {
    case Kind::String: {
      bud.string_size(s.size() + 2);
      std::string out = "'";
      for (char c : s) {
        if (c == '\'') out += "\\'";
        else if (c == '\\') out += "\\\\";
        else if (c == '\n') out += "\\n";
        else out += c;
      }
      bud.bytes(out.size());
      return out + "'";
    }
    case Kind::List: {
      bud.value_depth(depth + 1);
      std::string out = "[";
      for (size_t k = 0; k < list->size(); ++k) {
        if (k) out += ", ";
        bud.append(out, (*list)[k].repr(bud, depth + 1));
      }
      return out + "]";
    }
    case Kind::Dict: {
      bud.value_depth(depth + 1);
      std::string out = "{";
      bool first = true;
      for (auto& [k, v] : dict->items) {
        bud.append(out, (first ? "'" : ", '") + k + "': ");
        bud.append(out, v.repr(bud, depth + 1));
        first = false;
      }
      return out + "}";
    }
    case Kind::Callable: return "<function>";
    default: return to_str(bud);
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

bool values_equal(const Value& a, const Value& b, Budget& bud, int depth) {
  using K = Value::Kind;
  bud.step();
  if ((a.is_number() || a.kind == K::Bool) && (b.is_number() || b.kind == K::Bool) &&
      (a.kind != K::Bool) == (b.kind != K::Bool))
    return a.as_double() == b.as_double();
  if (a.kind != b.kind) return false;
  switch (a.kind) {
    case K::Undefined: case K::None: return true;
    case K::Bool: return a.b == b.b;
    case K::String: bud.bytes(a.s.size()); return a.s == b.s;
    case K::List:
      if (a.list == b.list) return true;
      if (a.list->size() != b.list->size()) return false;
      bud.value_depth(depth + 1);
      for (size_t k = 0; k < a.list->size(); ++k)
        if (!values_equal((*a.list)[k], (*b.list)[k], bud, depth + 1)) return false;
      return true;
    case K::Dict:
      if (a.dict == b.dict) return true;
      if (a.dict->items.size() != b.dict->items.size()) return false;
      bud.value_depth(depth + 1);
      for (auto& [k, v] : a.dict->items) {
        Value* o = b.dict->find(k);
        if (!o || !values_equal(v, *o, bud, depth + 1)) return false;
      }
      return true;
    default: return a.fn == b.fn;
  }
}

int compare_values(const Value& a, const Value& b, Budget& bud, int depth) {
  bud.step();
  if ((a.is_number() || a.kind == Value::Kind::Bool) && (b.is_number() || b.kind == Value::Kind::Bool)) {
    double x = a.as_double(), y = b.as_double();
    return x < y ? -1 : x > y ? 1 : 0;
  }
  if (a.is_string() && b.is_string()) {
    bud.bytes(std::min(a.s.size(), b.s.size()));
    return a.s < b.s ? -1 : a.s > b.s ? 1 : 0;
  }
  if (a.is_list() && b.is_list()) {
    bud.value_depth(depth + 1);
    for (size_t k = 0; k < a.list->size() && k < b.list->size(); ++k)
      if (int c = compare_values((*a.list)[k], (*b.list)[k], bud, depth + 1)) return c;
    return a.list->size() < b.list->size() ? -1 : a.list->size() > b.list->size() ? 1 : 0;
  }
  throw TemplateError(std::string("cannot compare ") + a.type_name() + " with " + b.type_name());
}

size_t iterate_count(const Value& v) {
  if (v.is_list()) return v.list->size();
  if (v.is_dict()) return v.dict->items.size();
  if (v.is_string()) {
    size_t n = 0;
    for (size_t k = 0; k < v.s.size();) {
      unsigned char c = v.s[k];
      k += c < 0x80 ? 1 : c < 0xE0 ? 2 : c < 0xF0 ? 3 : 4;
      ++n;
    }
    return n;
  }
  return 0;
}

ValueList iterate(const Value& v, Budget& bud) {
  if (v.is_undefined()) return {};
  if (!v.is_list() && !v.is_dict() && !v.is_string())
    throw TemplateError(std::string("cannot iterate over ") + v.type_name());
  const size_t n = iterate_count(v);
  bud.list_size(n);
  if (v.is_list()) {
    bud.copied(*v.list);
    return *v.list;
  }
  bud.built(n * sizeof(Value) + (v.is_string() ? v.s.size() : 0));
  ValueList out;
  out.reserve(n);
  if (v.is_dict()) {
    for (auto& kv : v.dict->items) out.push_back(Value::str(kv.first));
    return out;
  }
  for (size_t k = 0; k < v.s.size();) {
    unsigned char c = v.s[k];
    size_t len = c < 0x80 ? 1 : c < 0xE0 ? 2 : c < 0xF0 ? 3 : 4;
    out.push_back(Value::str(v.s.substr(k, len)));
    k += len;
  }
  return out;
}

}  // namespace tern::jinja
