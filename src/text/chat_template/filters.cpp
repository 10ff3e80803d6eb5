// Jinja filters used by chat templates.
#include <algorithm>
#include <cmath>

#include "text/chat_template/budget.h"
#include "text/chat_template/evaluator.h"
#include "text/chat_template/parser.h"
#include "text/chat_template/string_util.h"

namespace tern::jinja {
namespace {

const char* kFilters[] = {"trim", "tojson", "length", "count", "lower", "upper", "title", "capitalize",
                          "default", "d", "join", "first", "last", "list", "items", "map", "select",
                          "reject", "selectattr", "rejectattr", "replace", "string", "int", "float", "abs",
                          "round", "safe", "unique", "sort", "dictsort", "indent", "wordcount", "e",
                          "escape", "reverse", "sum", "min", "max"};

const Value* kwarg(const KwArgs& kw, const char* name) {
  for (auto& [k, v] : kw)
    if (k == name) return &v;
  return nullptr;
}

// Positional argument `k`, or keyword `name`, or undefined.
Value arg(const ValueList& args, const KwArgs& kw, size_t k, const char* name) {
  if (k < args.size()) return args[k];
  if (const Value* v = kwarg(kw, name)) return *v;
  return Value();
}

std::string html_escape(const std::string& s, Budget& b) {
  size_t n = s.size();
  for (char c : s) n += c == '&' ? 4 : c == '<' || c == '>' ? 3 : c == '"' || c == '\'' ? 4 : 0;
  b.string_size(n);
  std::string out;
  out.reserve(n);
  for (char c : s) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&#34;"; break;
      case '\'': out += "&#39;"; break;
      default: out += c;
    }
  }
  return out;
}

// select/reject/selectattr/rejectattr: keep items whose test (default: truthiness) matches.
Value filter_items(const std::string& name, const Value& subject, ValueList& args, Budget& b) {
  bool by_attr = name == "selectattr" || name == "rejectattr";
  bool keep_when = name == "select" || name == "selectattr";
  size_t k = 0;
  std::string attr;
  if (by_attr) {
    if (args.empty() || !args[0].is_string()) throw TemplateError(name + " needs an attribute name");
    attr = args[0].s;
    k = 1;
  }
  std::string test = k < args.size() && args[k].is_string() ? args[k].s : "";
  if (!test.empty() && !is_known_test(test)) throw TemplateError("unsupported test '" + test + "'");
  ValueList test_args(args.begin() + std::min(args.size(), k + 1), args.end());
  ValueList out;
  for (auto& item : iterate(subject, b)) {
    Value v = by_attr ? get_attr(item, attr, b) : item;
    bool pass = test.empty() ? v.truthy()
                : test == "defined" ? !v.is_undefined()
                : test == "undefined" ? v.is_undefined()
                                      : apply_test(test, v, test_args, b);
    if (pass == keep_when) out.push_back(item);
  }
  return Value::make_list(std::move(out));
}

Value sorted(const Value& subject, const ValueList& args, const KwArgs& kw, Budget& b) {
  ValueList items = iterate(subject, b);
  bool reverse = arg(args, kw, 0, "reverse").truthy();
  bool case_sensitive = arg(args, kw, 1, "case_sensitive").truthy();
  Value attribute = arg(args, kw, 2, "attribute");
  auto key = [&](const Value& v) {
    Value x = attribute.is_string() ? get_attr(v, attribute.s, b) : v;
    if (x.is_string() && !case_sensitive) {
      b.bytes(x.s.size());
      x.s = to_lower(x.s);
    }
    return x;
  };
  std::stable_sort(items.begin(), items.end(), [&](const Value& x, const Value& y) {
    int c = compare_values(key(x), key(y), b);
    return reverse ? c > 0 : c < 0;
  });
  return Value::make_list(std::move(items));
}

}  // namespace

bool is_known_filter(const std::string& n) {
  return std::find_if(std::begin(kFilters), std::end(kFilters), [&](const char* k) { return n == k; }) !=
         std::end(kFilters);
}

Value apply_filter(const std::string& n, Value& v, ValueList& args, KwArgs& kw, Budget& b) {
  using K = Value::Kind;
  auto need_str = [&]() -> const std::string& {
    if (!v.is_string()) throw TemplateError("filter '" + n + "' needs a string, got " + v.type_name());
    return v.s;
  };
  if (n == "trim") return Value::str(strip_chars(need_str(), " \t\n\r\f\v", true, true));
  if (n == "lower") return Value::str(to_lower(need_str()));
  if (n == "upper") return Value::str(to_upper(need_str()));
  if (n == "title") return Value::str(to_title(need_str()));
  if (n == "capitalize") return Value::str(capitalize(need_str()));
  if (n == "string") return Value::str(v.to_str(b));
  if (n == "safe") return v;
  if (n == "e" || n == "escape") return Value::str(html_escape(v.to_str(b), b));
  if (n == "tojson") {
    Value indent = arg(args, kw, 0, "indent");
    int width = 0;
    if (indent.kind == K::Int && indent.i > 0) {
      b.string_size(size_t(std::min<int64_t>(indent.i, INT64_MAX / 2)));
      width = int(indent.i);
    }
    return Value::str(to_json(v, width, b));
  }
  if (n == "length" || n == "count") {
    if (v.is_string()) return Value::integer(int64_t(iterate_count(v)));
    if (v.is_list()) return Value::integer(int64_t(v.list->size()));
    if (v.is_dict()) return Value::integer(int64_t(v.dict->items.size()));
    if (v.is_undefined()) return Value::integer(0);
    throw TemplateError(std::string("length of ") + v.type_name());
  }
  if (n == "default" || n == "d") {
    bool boolean = arg(args, kw, 1, "boolean").truthy();
    if (v.is_undefined() || (boolean && !v.truthy())) {
      Value d = arg(args, kw, 0, "default_value");
      return d.is_undefined() ? Value::str("") : d;
    }
    return v;
  }
  if (n == "join") {
    Value sep = arg(args, kw, 0, "d");
    Value attribute = arg(args, kw, 1, "attribute");
    std::string out;
    ValueList items = iterate(v, b);
    const std::string empty;
    const std::string& glue = sep.is_string() ? sep.s : empty;
    for (size_t k = 0; k < items.size(); ++k) {
      Value item = attribute.is_string() ? get_attr(items[k], attribute.s, b) : items[k];
      const std::string piece = item.to_str(b);
      b.string_size(out.size() + (k ? glue.size() : 0) + piece.size());
      if (k) out += glue;
      out += piece;
    }
    b.built(out.size());
    return Value::str(std::move(out));
  }
  if (n == "first" || n == "last") {
    if (v.is_string()) {
      if (v.s.empty()) return Value();
      if (n == "first") return get_item(v, Value::integer(0), b);
      return get_item(v, Value::integer(-1), b);
    }
    if (v.is_list()) {
      if (v.list->empty()) return Value();
      return n == "first" ? v.list->front() : v.list->back();
    }
    ValueList items = iterate(v, b);
    if (items.empty()) return Value();
    return n == "first" ? items.front() : items.back();
  }
  if (n == "list") return Value::make_list(iterate(v, b));
  if (n == "reverse") {
    if (v.is_string()) {
      // By characters, from their byte offsets.
      b.bytes(v.s.size());
      std::vector<std::pair<size_t, size_t>> chars;
      for (size_t k = 0; k < v.s.size();) {
        const unsigned char c = v.s[k];
        const size_t len = std::min(v.s.size() - k, size_t(c < 0x80 ? 1 : c < 0xE0 ? 2 : c < 0xF0 ? 3 : 4));
        chars.emplace_back(k, len);
        k += len;
      }
      std::string s;
      s.reserve(v.s.size());
      for (auto it = chars.rbegin(); it != chars.rend(); ++it) s.append(v.s, it->first, it->second);
      return Value::str(std::move(s));
    }
    ValueList items = iterate(v, b);
    std::reverse(items.begin(), items.end());
    return Value::make_list(std::move(items));
  }
  if (n == "items") {
    if (!v.is_dict()) throw TemplateError(std::string("filter 'items' needs a dict, got ") + v.type_name());
    return call_method(v, "items", args, kw, b);
  }
  if (n == "map") {
    ValueList out;
    const Value* attribute = kwarg(kw, "attribute");
    if (!attribute && (args.empty() || !args[0].is_string())) throw TemplateError("map needs attribute= or a filter name");
    ValueList rest(args.begin() + std::min<size_t>(args.size(), 1), args.end());
    KwArgs none;
    for (auto& item : iterate(v, b)) {
      if (attribute) {
        Value x = get_attr(item, attribute->to_str(b), b);
        if (x.is_undefined())
          if (const Value* d = kwarg(kw, "default")) x = *d;
        out.push_back(x);
      } else {
        if (!is_known_filter(args[0].s)) throw TemplateError("unsupported filter '" + args[0].s + "'");
        out.push_back(apply_filter(args[0].s, item, rest, none, b));
      }
    }
    return Value::make_list(std::move(out));
  }
  if (n == "select" || n == "reject" || n == "selectattr" || n == "rejectattr") return filter_items(n, v, args, b);
  if (n == "replace") {
    if (args.size() < 2 || !args[0].is_string() || !args[1].is_string())
      throw TemplateError("replace needs two strings");
    Value count = arg(args, kw, 2, "count");
    return Value::str(replace_all(v.to_str(b), args[0].s, args[1].s, count.kind == K::Int ? count.i : -1, b));
  }
  if (n == "int") {
    if (v.kind == K::Int) return v;
    if (v.kind == K::Float) {
      if (std::isfinite(v.f) && v.f > -9.2e18 && v.f < 9.2e18) return Value::integer(int64_t(v.f));
      if (!std::isfinite(v.f)) {
        Value d = arg(args, kw, 0, "default");
        return d.is_undefined() ? Value::integer(0) : d;
      }
      throw TemplateError("filter 'int': integer overflow");
    }
    if (v.kind == K::Bool) return Value::integer(v.b);
    if (v.is_string()) {
      try {
        size_t used = 0;
        int64_t x = std::stoll(strip_chars(v.s, " \t\n", true, true), &used);
        return Value::integer(x);
      } catch (...) {
      }
    }
    Value d = arg(args, kw, 0, "default");
    return d.is_undefined() ? Value::integer(0) : d;
  }
  if (n == "float") {
    if (v.is_number()) return Value::real(v.as_double());
    if (v.is_string()) {
      try {
        return Value::real(std::stod(v.s));
      } catch (...) {
      }
    }
    Value d = arg(args, kw, 0, "default");
    return d.is_undefined() ? Value::real(0) : d;
  }
  if (n == "abs") {
    if (v.kind == K::Int) {
      if (v.i == INT64_MIN) throw TemplateError("filter 'abs': integer overflow");
      return Value::integer(v.i < 0 ? -v.i : v.i);
    }
    if (v.kind == K::Float) return Value::real(std::fabs(v.f));
    throw TemplateError(std::string("abs of ") + v.type_name());
  }
  if (n == "round") {
    if (!v.is_number()) throw TemplateError(std::string("round of ") + v.type_name());
    Value prec = arg(args, kw, 0, "precision");
    Value method = arg(args, kw, 1, "method");
    double scale = std::pow(10.0, prec.kind == K::Int ? double(prec.i) : 0.0), x = v.as_double() * scale;
    std::string m = method.is_string() ? method.s : "common";
    x = m == "floor" ? std::floor(x) : m == "ceil" ? std::ceil(x) : std::round(x);
    return Value::real(x / scale);
  }
  if (n == "unique") {
    ValueList out;
    for (auto& item : iterate(v, b))
      if (std::none_of(out.begin(), out.end(), [&](const Value& o) { return values_equal(o, item, b); }))
        out.push_back(item);
    return Value::make_list(std::move(out));
  }
  if (n == "sort") return sorted(v, args, kw, b);
  if (n == "dictsort") {
    if (!v.is_dict()) throw TemplateError("dictsort needs a dict");
    ValueList items = *call_method(v, "items", args, kw, b).list;
    std::stable_sort(items.begin(), items.end(), [&](const Value& x, const Value& y) {
      b.bytes((*x.list)[0].s.size() + (*y.list)[0].s.size());
      return to_lower((*x.list)[0].s) < to_lower((*y.list)[0].s);
    });
    return Value::make_list(std::move(items));
  }
  if (n == "indent") {
    int64_t width = 4;
    Value w = arg(args, kw, 0, "width");
    if (w.kind == K::Int) width = w.i;
    bool first = arg(args, kw, 1, "first").truthy(), blank = arg(args, kw, 2, "blank").truthy();
    b.string_size(size_t(std::max<int64_t>(0, std::min<int64_t>(width, INT64_MAX / 2))));
    std::string pad(size_t(std::max<int64_t>(0, width)), ' ');
    const std::string nl = "\n";
    std::vector<std::string> lines = split_str(v.to_str(b), &nl, -1, b);
    std::string out;
    for (size_t k = 0; k < lines.size(); ++k) {
      bool indent_it = (k > 0 || first) && (blank || !lines[k].empty());
      b.string_size(out.size() + 1 + (indent_it ? pad.size() : 0) + lines[k].size());
      if (k) out += '\n';
      if (indent_it) out += pad;
      out += lines[k];
    }
    b.built(out.size());
    return Value::str(std::move(out));
  }
  if (n == "wordcount") return Value::integer(int64_t(split_str(v.to_str(b), nullptr, -1, b).size()));
  if (n == "sum") {
    Value total = Value::integer(0);
    for (auto& x : iterate(v, b)) {
      if (!x.is_number()) throw TemplateError("sum of non-numbers");
      int64_t r = 0;
      if (total.kind == K::Int && x.kind == K::Int) {
        if (__builtin_add_overflow(total.i, x.i, &r)) throw TemplateError("filter 'sum': integer overflow");
        total = Value::integer(r);
      } else {
        total = Value::real(total.as_double() + x.as_double());
      }
    }
    return total;
  }
  if (n == "min" || n == "max") {
    ValueList items = iterate(v, b);
    if (items.empty()) return Value();
    Value best = items[0];
    for (auto& x : items)
      if ((compare_values(x, best, b) < 0) == (n == "min") && !values_equal(x, best, b)) best = x;
    return best;
  }
  throw TemplateError("unsupported filter '" + n + "'");
}

}  // namespace tern::jinja
