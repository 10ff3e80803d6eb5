// Attribute/item access, string and dict methods, tests and global functions.
#include <algorithm>
#include <cctype>
#include <ctime>

#include "text/chat_template/budget.h"
#include "text/chat_template/evaluator.h"
#include "text/chat_template/parser.h"
#include "text/chat_template/string_util.h"

namespace tern::jinja {

Value get_attr(const Value& obj, const std::string& name, Budget& b) {
  if (obj.is_dict()) {
    if (Value* v = obj.dict->find(name)) return *v;
    return Value();
  }
  if (obj.is_list() && !name.empty() && std::isdigit(static_cast<unsigned char>(name[0]))) {
    // xs.0 is xs[0]; an index too large for 64 bits is past the end.
    int64_t k = 0;
    for (char c : name) {
      if (!std::isdigit(static_cast<unsigned char>(c))) return Value();
      if (__builtin_mul_overflow(k, 10, &k) || __builtin_add_overflow(k, c - '0', &k)) return Value();
    }
    return get_item(obj, Value::integer(k), b);
  }
  return Value();
}

Value get_item(const Value& obj, const Value& key, Budget& b) {
  if (obj.is_dict()) {
    if (Value* v = obj.dict->find(key.is_string() ? key.s : key.to_str(b))) return *v;
    return Value();
  }
  if (obj.is_list() || obj.is_string()) {
    if (key.kind != Value::Kind::Int) {
      if (key.is_string()) return Value();  // e.g. message['content'] on a string: undefined
      throw TemplateError(std::string("indices must be integers, got ") + key.type_name());
    }
    const int64_t n = obj.is_list() ? int64_t(obj.list->size()) : int64_t(iterate_count(obj));
    const int64_t k = key.i < 0 ? (key.i < -n ? -1 : key.i + n) : key.i;
    if (k < 0 || k >= n) return Value();
    if (obj.is_list()) return (*obj.list)[size_t(k)];
    // The k-th character, found by walking the string (no per-character values).
    b.bytes(obj.s.size());
    size_t at = 0;
    for (int64_t c = 0;; ++c) {
      const unsigned char lead = obj.s[at];
      const size_t len = lead < 0x80 ? 1 : lead < 0xE0 ? 2 : lead < 0xF0 ? 3 : 4;
      if (c == k) return Value::str(obj.s.substr(at, len));
      at += len;
    }
  }
  if (obj.is_undefined() || obj.is_none()) return Value();
  throw TemplateError(std::string("cannot subscript ") + obj.type_name());
}

static std::string arg_str(ValueList& args, size_t k, const char* method) {
  if (k >= args.size() || !args[k].is_string())
    throw TemplateError(std::string(method) + "() needs a string argument");
  return args[k].s;
}

Value call_method(const Value& obj, const std::string& name, ValueList& args, KwArgs& kwargs, Budget& b) {
  if (obj.is_string()) {
    const std::string& s = obj.s;
    std::string chars = args.empty() || args[0].is_none() ? std::string(" \t\n\r\f\v") : arg_str(args, 0, name.c_str());
    if (name == "strip") return Value::str(strip_chars(s, chars, true, true));
    if (name == "lstrip") return Value::str(strip_chars(s, chars, true, false));
    if (name == "rstrip") return Value::str(strip_chars(s, chars, false, true));
    if (name == "upper") return Value::str(to_upper(s));
    if (name == "lower") return Value::str(to_lower(s));
    if (name == "title") return Value::str(to_title(s));
    if (name == "capitalize") return Value::str(capitalize(s));
    if (name == "startswith" || name == "endswith") {
      bool start = name == "startswith";
      auto check = [&](const std::string& p) {
        if (p.size() > s.size()) return false;
        return start ? s.compare(0, p.size(), p) == 0 : s.compare(s.size() - p.size(), p.size(), p) == 0;
      };
      if (!args.empty() && args[0].is_list()) {
        for (auto& p : *args[0].list)
          if (p.is_string() && check(p.s)) return Value::boolean(true);
        return Value::boolean(false);
      }
      return Value::boolean(check(arg_str(args, 0, name.c_str())));
    }
    if (name == "split") {
      int64_t maxsplit = args.size() > 1 && args[1].kind == Value::Kind::Int ? args[1].i : -1;
      for (auto& [k, v] : kwargs)
        if (k == "maxsplit" && v.kind == Value::Kind::Int) maxsplit = v.i;
      ValueList parts;
      for (auto& p : split_str(s, args.empty() || args[0].is_none() ? nullptr : &args[0].s, maxsplit, b))
        parts.push_back(Value::str(std::move(p)));
      return Value::make_list(std::move(parts));
    }
    if (name == "replace") {
      int64_t count = args.size() > 2 && args[2].kind == Value::Kind::Int ? args[2].i : -1;
      return Value::str(replace_all(s, arg_str(args, 0, "replace"), arg_str(args, 1, "replace"), count, b));
    }
    if (name == "find") {
      b.bytes(s.size());
      size_t at = find_bytes(s, arg_str(args, 0, "find"), 0);
      return Value::integer(at == std::string::npos ? -1 : int64_t(at));
    }
    if (name == "count") {
      std::string needle = arg_str(args, 0, "count");
      b.bytes(s.size());
      if (needle.empty()) return Value::integer(int64_t(iterate_count(obj)) + 1);  // Python counts the gaps
      int64_t n = 0;
      for (size_t at = find_bytes(s, needle, 0); at != std::string::npos; at = find_bytes(s, needle, at + needle.size()))
        ++n;
      return Value::integer(n);
    }
    if (name == "join") {
      std::string out;
      if (args.empty()) throw TemplateError("join() needs an argument");
      ValueList items = iterate(args[0], b);
      for (size_t k = 0; k < items.size(); ++k) {
        const std::string piece = items[k].to_str(b);
        b.string_size(out.size() + (k ? s.size() : 0) + piece.size());
        if (k) out += s;
        out += piece;
      }
      b.built(out.size());
      return Value::str(std::move(out));
    }
  } else if (obj.is_dict()) {
    if (name == "items") {
      b.list_size(obj.dict->items.size());
      ValueList out;
      for (auto& [k, v] : obj.dict->items) {
        b.built(2 * sizeof(Value) + k.size() + v.s.size());
        out.push_back(Value::make_list({Value::str(k), v}));
      }
      return Value::make_list(std::move(out));
    }
    if (name == "keys" || name == "values") {
      b.list_size(obj.dict->items.size());
      ValueList out;
      for (auto& [k, v] : obj.dict->items) out.push_back(name == "keys" ? Value::str(k) : v);
      b.copied(out);
      return Value::make_list(std::move(out));
    }
    if (name == "get") {
      if (args.empty()) throw TemplateError("get() needs a key");
      Value v = get_item(obj, args[0], b);
      if (v.is_undefined()) return args.size() > 1 ? args[1] : Value::none();
      return v;
    }
  }
  throw TemplateError("unsupported method '" + name + "' on " + obj.type_name());
}

bool is_known_test(const std::string& n) {
  static const char* known[] = {"defined", "undefined", "none", "string", "number", "integer", "float",
                                "mapping", "iterable", "sequence", "boolean", "true", "false", "odd",
                                "even", "equalto", "eq", "sameas", "in", "divisibleby", "callable",
                                "lower", "upper", "ne", "lt", "gt", "le", "ge"};
  return std::find_if(std::begin(known), std::end(known), [&](const char* k) { return n == k; }) != std::end(known);
}

bool apply_test(const std::string& n, const Value& v, ValueList& args, Budget& b) {
  using K = Value::Kind;
  auto need_arg = [&]() -> const Value& {
    if (args.empty()) throw TemplateError("test '" + n + "' needs an argument");
    return args[0];
  };
  if (n == "none") return v.is_none();
  if (n == "string") return v.is_string();
  if (n == "number") return v.is_number();
  if (n == "integer") return v.kind == K::Int;
  if (n == "float") return v.kind == K::Float;
  if (n == "mapping") return v.is_dict();
  if (n == "iterable") return v.is_list() || v.is_dict() || v.is_string();
  if (n == "sequence") return v.is_list() || v.is_dict() || v.is_string();
  if (n == "boolean") return v.kind == K::Bool;
  if (n == "true") return v.kind == K::Bool && v.b;
  if (n == "false") return v.kind == K::Bool && !v.b;
  if (n == "callable") return v.kind == K::Callable;
  if (n == "lower") return v.is_string() && to_lower(v.s) == v.s;
  if (n == "upper") return v.is_string() && to_upper(v.s) == v.s;
  if (n == "odd" || n == "even") {
    if (v.kind != K::Int) throw TemplateError("test '" + n + "' needs an integer");
    return (v.i % 2 != 0) == (n == "odd");
  }
  if (n == "divisibleby") {
    const Value& d = need_arg();
    if (v.kind != K::Int || d.kind != K::Int || d.i == 0) throw TemplateError("divisibleby needs integers");
    return d.i == -1 || v.i % d.i == 0;  // INT64_MIN % -1 traps in C
  }
  if (n == "equalto" || n == "eq" || n == "sameas") return values_equal(v, need_arg(), b);
  if (n == "ne") return !values_equal(v, need_arg(), b);
  if (n == "lt") return compare_values(v, need_arg(), b) < 0;
  if (n == "gt") return compare_values(v, need_arg(), b) > 0;
  if (n == "le") return compare_values(v, need_arg(), b) <= 0;
  if (n == "ge") return compare_values(v, need_arg(), b) >= 0;
  if (n == "in") {
    const Value& c = need_arg();
    if (c.is_string()) {
      b.bytes(c.s.size());
      return v.is_string() && find_bytes(c.s, v.s, 0) != std::string::npos;
    }
    if (c.is_dict()) return v.is_string() && c.dict->find(v.s);
    if (!c.is_list() && !c.is_undefined()) throw TemplateError(std::string("test 'in' needs a container, got ") + c.type_name());
    if (c.is_list())
      for (auto& x : *c.list)
        if (values_equal(v, x, b)) return true;
    return false;
  }
  throw TemplateError("unsupported test '" + n + "'");
}

void add_global_functions(Scope& scope, Budget& budget) {
  Budget* bud = &budget;  // outlives the globals: both belong to one render
  scope.vars["raise_exception"] = Value::callable([bud](ValueList& args, KwArgs&) -> Value {
    throw TemplateError("raise_exception: " + (args.empty() ? std::string() : args[0].to_str(*bud)));
  });
  scope.vars["range"] = Value::callable([bud](ValueList& args, KwArgs&) {
    for (auto& a : args)
      if (a.kind != Value::Kind::Int) throw TemplateError("range() needs integers");
    int64_t start = 0, stop = 0, step = 1;
    if (args.size() == 1) stop = args[0].i;
    else if (args.size() >= 2) start = args[0].i, stop = args[1].i;
    if (args.size() >= 3) step = args[2].i;
    if (args.empty() || args.size() > 3 || step == 0) throw TemplateError("range() takes 1 to 3 arguments, step != 0");
    // Length first, in 128 bits, so neither the count nor k += step can overflow.
    const __int128 span = step > 0 ? __int128(stop) - start : __int128(start) - stop;
    const __int128 stride = step > 0 ? __int128(step) : -__int128(step);
    const __int128 len = span <= 0 ? 0 : (span + stride - 1) / stride;
    if (len > bud->limits().max_range)
      throw LimitError("range() of " + std::to_string(int64_t(std::min<__int128>(len, INT64_MAX))) +
                       " items exceeds " + std::to_string(bud->limits().max_range));
    bud->built(size_t(len) * sizeof(Value));
    ValueList out;
    out.reserve(size_t(len));
    for (int64_t k = 0; k < int64_t(len); ++k) out.push_back(Value::integer(int64_t(start + __int128(k) * step)));
    return Value::make_list(std::move(out));
  });
  auto make_dict = [bud](bool ns) {
    return [ns, bud](ValueList& args, KwArgs& kw) {
      Value d = Value::make_dict();
      d.is_namespace = ns;
      if (ns) bud->track_namespace(d.dict);
      for (auto& a : args) {
        if (!a.is_dict()) throw TemplateError(ns ? "namespace() takes a dict or keywords" : "dict() takes a dict or keywords");
        for (auto& [k, v] : a.dict->items) {
          bud->built(sizeof(Value) + k.size() + v.s.size());
          d.dict->set(k, v);
        }
      }
      for (auto& [k, v] : kw) {
        bud->built(sizeof(Value) + k.size() + v.s.size());
        d.dict->set(k, v);
      }
      return d;
    };
  };
  scope.vars["dict"] = Value::callable(make_dict(false));
  scope.vars["namespace"] = Value::callable(make_dict(true));
  scope.vars["strftime_now"] = Value::callable([](ValueList& args, KwArgs&) {
    if (args.empty() || !args[0].is_string()) throw TemplateError("strftime_now() needs a format string");
    std::time_t now = std::time(nullptr);
    std::tm tm{};
    localtime_r(&now, &tm);
    char buf[256];
    size_t n = std::strftime(buf, sizeof buf, args[0].s.c_str(), &tm);
    return Value::str(std::string(buf, n));
  });
}

}  // namespace tern::jinja
