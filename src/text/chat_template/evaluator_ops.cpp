// Binary operators (Python semantics on 64-bit ints: overflow is an error, never a wrap) and slicing.
#include <cmath>
#include <cstring>

#include "text/chat_template/evaluator_impl.h"
#include "text/chat_template/string_util.h"

namespace tern::jinja {
namespace {

// Python's int ** int for a non-negative exponent; nullopt-like false on overflow.
bool int_pow(int64_t base, int64_t exp, int64_t* out) {
  int64_t r = 1;
  while (exp > 0) {
    if (exp & 1) {
      if (__builtin_mul_overflow(r, base, &r)) return false;
    }
    exp >>= 1;
    if (exp > 0 && __builtin_mul_overflow(base, base, &base)) return false;
  }
  *out = r;
  return true;
}

// Byte offsets where the characters of s start, with s.size() appended (the characters iterate() gives).
std::vector<uint32_t> char_starts(const std::string& s) {
  std::vector<uint32_t> starts;
  starts.reserve(s.size() + 1);
  for (size_t k = 0; k < s.size();) {
    starts.push_back(uint32_t(k));
    unsigned char c = s[k];
    k += c < 0x80 ? 1 : c < 0xE0 ? 2 : c < 0xF0 ? 3 : 4;
  }
  starts.push_back(uint32_t(s.size()));
  return starts;
}

}  // namespace

Value Evaluator::slice(const Expr& e, const ScopePtr& sc) {
  Value obj = eval(*e.args[0], sc);
  if (!obj.is_string() && !obj.is_list()) fail_at(e.line, std::string("cannot slice ") + obj.type_name());
  // A string is sliced by characters, through their byte offsets (no per-character values).
  std::vector<uint32_t> starts;
  if (obj.is_string()) {
    bud.bytes(obj.s.size());
    starts = char_starts(obj.s);
  }
  const int64_t n = obj.is_string() ? int64_t(starts.size()) - 1 : int64_t(obj.list->size());
  auto opt = [&](int k, bool& has) -> int64_t {
    has = false;
    if (!e.args[k]) return 0;
    Value v = eval(*e.args[k], sc);
    if (v.is_none()) return 0;
    if (v.kind != Value::Kind::Int) fail_at(e.line, "slice indices must be integers");
    has = true;
    return v.i;
  };
  bool hs, he, hst;
  int64_t start = opt(1, hs), stop = opt(2, he), step = opt(3, hst);
  if (!hst) step = 1;
  if (step == 0) fail_at(e.line, "slice step cannot be zero");
  auto clamp = [&](int64_t x, int64_t lo, int64_t hi) {
    if (x < 0) x = x < -n ? -1 : x + n;  // no overflow for x near INT64_MIN
    return std::max(lo, std::min(hi, x));
  };
  auto pick_all = [&](auto&& visit) {
    if (step > 0) {
      int64_t b = hs ? clamp(start, 0, n) : 0, en = he ? clamp(stop, 0, n) : n;
      for (int64_t k = b; k < en; k = en - k > step ? k + step : en) visit(k);
    } else {
      int64_t b = hs ? clamp(start, -1, n - 1) : n - 1, en = he ? clamp(stop, -1, n - 1) : -1;
      const uint64_t back = uint64_t(0) - uint64_t(step);  // -step without overflow at INT64_MIN
      for (int64_t k = b; k > en; k = uint64_t(k - en) > back ? k + step : en) visit(k);
    }
  };
  if (obj.is_string()) {
    std::string s;
    pick_all([&](int64_t k) {
      const uint32_t from = starts[size_t(k)], len = starts[size_t(k) + 1] - from;
      s.append(obj.s, from, len);
    });
    return Value::str(std::move(s));
  }
  ValueList outv;
  pick_all([&](int64_t k) { outv.push_back((*obj.list)[size_t(k)]); });
  bud.copied(outv);
  return Value::make_list(std::move(outv));
}

Value Evaluator::binary(const Expr& e, const ScopePtr& sc) {
  Value a = eval(*e.args[0], sc), b = eval(*e.args[1], sc);
  const std::string& op = e.name;
  if (op == "==") return Value::boolean(values_equal(a, b, bud));
  if (op == "!=") return Value::boolean(!values_equal(a, b, bud));
  if (op == "<") return Value::boolean(compare_values(a, b, bud) < 0);
  if (op == ">") return Value::boolean(compare_values(a, b, bud) > 0);
  if (op == "<=") return Value::boolean(compare_values(a, b, bud) <= 0);
  if (op == ">=") return Value::boolean(compare_values(a, b, bud) >= 0);
  if (op == "~") {
    std::string x = a.to_str(bud), y = b.to_str(bud);
    bud.string_size(x.size() + y.size());
    return Value::str(x + y);
  }
  if (op == "in" || op == "not in") {
    bool found = false;
    if (b.is_string()) {
      if (!a.is_string()) fail_at(e.line, "'in <string>' needs a string on the left");
      bud.bytes(b.s.size());
      found = find_bytes(b.s, a.s, 0) != std::string::npos;
    } else if (b.is_list()) {
      for (auto& x : *b.list) found = found || values_equal(a, x, bud);
    } else if (b.is_dict()) {
      found = a.is_string() && b.dict->find(a.s) != nullptr;
    } else if (!b.is_undefined()) {
      fail_at(e.line, std::string("'in' needs a string, list or dict, got ") + b.type_name());
    }
    return Value::boolean(found != (op == "not in"));
  }
  if (op == "+") {
    if (a.is_string() && b.is_string()) {
      bud.string_size(a.s.size() + b.s.size());
      return Value::str(a.s + b.s);
    }
    if (a.is_list() && b.is_list()) {
      bud.list_size(a.list->size() + b.list->size());
      ValueList l = *a.list;
      l.insert(l.end(), b.list->begin(), b.list->end());
      bud.copied(l);
      return Value::make_list(std::move(l));
    }
  }
  if (op == "*" && a.is_string() && b.kind == Value::Kind::Int) {
    if (b.i <= 0 || a.s.empty()) return Value::str("");
    size_t total = 0;
    if (__builtin_mul_overflow(a.s.size(), uint64_t(b.i), &total)) total = SIZE_MAX;
    bud.string_size(total);
    std::string s;
    s.reserve(total);
    for (int64_t k = 0; k < b.i; ++k) s += a.s;
    return Value::str(std::move(s));
  }
  if (!a.is_number() || !b.is_number())
    fail_at(e.line, std::string("unsupported operand types for ") + op + ": " + a.type_name() + " and " +
                        b.type_name());
  const bool ints = a.kind == Value::Kind::Int && b.kind == Value::Kind::Int;
  const double x = a.as_double(), y = b.as_double();
  int64_t r = 0;
  auto overflow = [&]() -> Value { fail_at(e.line, "integer overflow in " + op); };
  if (op == "+") return ints ? (__builtin_add_overflow(a.i, b.i, &r) ? overflow() : Value::integer(r)) : Value::real(x + y);
  if (op == "-") return ints ? (__builtin_sub_overflow(a.i, b.i, &r) ? overflow() : Value::integer(r)) : Value::real(x - y);
  if (op == "*") return ints ? (__builtin_mul_overflow(a.i, b.i, &r) ? overflow() : Value::integer(r)) : Value::real(x * y);
  if (op == "**") {
    if (ints && b.i >= 0) return int_pow(a.i, b.i, &r) ? Value::integer(r) : overflow();
    return Value::real(std::pow(x, y));
  }
  if (y == 0) fail_at(e.line, "division by zero");
  if (op == "/") return Value::real(x / y);
  if (op == "//") {
    if (!ints) return Value::real(std::floor(x / y));
    if (a.i == INT64_MIN && b.i == -1) return overflow();
    int64_t q = a.i / b.i;
    if (a.i % b.i != 0 && ((a.i < 0) != (b.i < 0))) --q;  // Python floors
    return Value::integer(q);
  }
  if (op == "%") {
    if (!ints) return Value::real(x - y * std::floor(x / y));
    if (b.i == -1) return Value::integer(0);  // INT64_MIN % -1 traps in C
    int64_t m = a.i % b.i;
    if (m != 0 && ((m < 0) != (b.i < 0))) m += b.i;  // the sign of the divisor, as in Python
    return Value::integer(m);
  }
  fail_at(e.line, "unknown operator " + op);
}

}  // namespace tern::jinja
