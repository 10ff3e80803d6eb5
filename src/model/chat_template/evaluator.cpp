#include "model/chat_template/evaluator.h"

#include <cmath>

namespace tern::jinja {
namespace {

enum class Flow { Normal, Break, Continue };

[[noreturn]] void fail(int line, const std::string& what) {
  throw TemplateError("line " + std::to_string(line) + ": " + what);
}

struct Evaluator {
  Value eval(const Expr& e, const ScopePtr& sc);
  Flow exec(const Body& body, const ScopePtr& sc, std::string& out);
  Flow exec_stmt(const Stmt& s, const ScopePtr& sc, std::string& out);
  void exec_for(const Stmt& s, const ScopePtr& sc, std::string& out);
  Value binary(const Expr& e, const ScopePtr& sc);
  Value call(const Value& fn, ValueList& args, KwArgs& kw) { return (*fn.fn)(args, kw); }
  Value make_macro(const Stmt& s, const ScopePtr& sc);
  Value slice(const Expr& e, const ScopePtr& sc);
};

Value Evaluator::eval(const Expr& e, const ScopePtr& sc) {
  try {
    switch (e.kind) {
      case Expr::Kind::Literal: return e.literal;
      case Expr::Kind::Name: {
        const Value* v = sc->lookup(e.name);
        return v ? *v : Value();
      }
      case Expr::Kind::List: case Expr::Kind::Tuple: {
        ValueList items;
        for (auto& a : e.args) items.push_back(eval(*a, sc));
        return Value::make_list(std::move(items));
      }
      case Expr::Kind::Dict: {
        Value d = Value::make_dict();
        for (size_t k = 0; k + 1 < e.args.size(); k += 2) {
          Value key = eval(*e.args[k], sc);
          d.dict->set(key.to_str(), eval(*e.args[k + 1], sc));
        }
        return d;
      }
      case Expr::Kind::Unary: {
        Value v = eval(*e.args[0], sc);
        if (e.name == "not") return Value::boolean(!v.truthy());
        if (!v.is_number()) fail(e.line, std::string("bad operand for unary ") + e.name + ": " + v.type_name());
        if (e.name == "+") return v;
        return v.kind == Value::Kind::Int ? Value::integer(-v.i) : Value::real(-v.f);
      }
      case Expr::Kind::And: {
        Value a = eval(*e.args[0], sc);
        return a.truthy() ? eval(*e.args[1], sc) : a;
      }
      case Expr::Kind::Or: {
        Value a = eval(*e.args[0], sc);
        return a.truthy() ? a : eval(*e.args[1], sc);
      }
      case Expr::Kind::Ternary:
        if (eval(*e.args[0], sc).truthy()) return eval(*e.args[1], sc);
        return e.args[2] ? eval(*e.args[2], sc) : Value();
      case Expr::Kind::Binary: return binary(e, sc);
      case Expr::Kind::Attr: return get_attr(eval(*e.args[0], sc), e.name);
      case Expr::Kind::Subscript: return get_item(eval(*e.args[0], sc), eval(*e.args[1], sc));
      case Expr::Kind::Slice: return slice(e, sc);
      case Expr::Kind::Call: {
        ValueList args;
        KwArgs kw;
        for (size_t k = 1; k < e.args.size(); ++k) args.push_back(eval(*e.args[k], sc));
        for (auto& [name, x] : e.kwargs) kw.emplace_back(name, eval(*x, sc));
        const Expr& callee = *e.args[0];
        if (callee.kind == Expr::Kind::Attr) {
          Value obj = eval(*callee.args[0], sc);
          Value member = obj.is_dict() ? get_attr(obj, callee.name) : Value();
          if (member.kind == Value::Kind::Callable) return call(member, args, kw);
          return call_method(obj, callee.name, args, kw);
        }
        Value fn = eval(callee, sc);
        if (fn.kind != Value::Kind::Callable)
          fail(e.line, (callee.kind == Expr::Kind::Name ? "'" + callee.name + "'" : std::string("value")) +
                           " is not callable");
        return call(fn, args, kw);
      }
      case Expr::Kind::Filter: {
        Value subject = eval(*e.args[0], sc);
        ValueList args;
        KwArgs kw;
        for (size_t k = 1; k < e.args.size(); ++k) args.push_back(eval(*e.args[k], sc));
        for (auto& [name, x] : e.kwargs) kw.emplace_back(name, eval(*x, sc));
        return apply_filter(e.name, subject, args, kw, [&](const Value& fn, ValueList& a) {
          KwArgs none;
          return call(fn, a, none);
        });
      }
      case Expr::Kind::Test: {
        if (e.name == "defined" || e.name == "undefined") {
          bool defined = !eval(*e.args[0], sc).is_undefined();
          return Value::boolean(((e.name == "defined") == defined) != e.negated);
        }
        Value subject = eval(*e.args[0], sc);
        ValueList args;
        for (size_t k = 1; k < e.args.size(); ++k) args.push_back(eval(*e.args[k], sc));
        return Value::boolean(apply_test(e.name, subject, args) != e.negated);
      }
    }
  } catch (const TemplateError& err) {
    std::string msg = err.what();
    if (msg.rfind("line ", 0) == 0) throw;
    fail(e.line, msg);
  }
  return Value();
}

Value Evaluator::slice(const Expr& e, const ScopePtr& sc) {
  Value obj = eval(*e.args[0], sc);
  ValueList items = obj.is_string() ? iterate(obj) : obj.is_list() ? *obj.list : ValueList{};
  if (!obj.is_string() && !obj.is_list()) fail(e.line, std::string("cannot slice ") + obj.type_name());
  int64_t n = int64_t(items.size());
  auto opt = [&](int k, bool& has) -> int64_t {
    has = false;
    if (!e.args[k]) return 0;
    Value v = eval(*e.args[k], sc);
    if (v.is_none()) return 0;
    if (v.kind != Value::Kind::Int) fail(e.line, "slice indices must be integers");
    has = true;
    return v.i;
  };
  bool hs, he, hst;
  int64_t start = opt(1, hs), stop = opt(2, he), step = opt(3, hst);
  if (!hst) step = 1;
  if (step == 0) fail(e.line, "slice step cannot be zero");
  auto clamp = [&](int64_t x, int64_t lo, int64_t hi) {
    if (x < 0) x += n;
    return std::max(lo, std::min(hi, x));
  };
  ValueList outv;
  if (step > 0) {
    int64_t b = hs ? clamp(start, 0, n) : 0, en = he ? clamp(stop, 0, n) : n;
    for (int64_t k = b; k < en; k += step) outv.push_back(items[size_t(k)]);
  } else {
    int64_t b = hs ? clamp(start, -1, n - 1) : n - 1, en = he ? clamp(stop, -1, n - 1) : -1;
    for (int64_t k = b; k > en; k += step) outv.push_back(items[size_t(k)]);
  }
  if (obj.is_string()) {
    std::string s;
    for (auto& c : outv) s += c.s;
    return Value::str(s);
  }
  return Value::make_list(std::move(outv));
}

Value Evaluator::binary(const Expr& e, const ScopePtr& sc) {
  Value a = eval(*e.args[0], sc), b = eval(*e.args[1], sc);
  const std::string& op = e.name;
  if (op == "==") return Value::boolean(values_equal(a, b));
  if (op == "!=") return Value::boolean(!values_equal(a, b));
  if (op == "<") return Value::boolean(compare_values(a, b) < 0);
  if (op == ">") return Value::boolean(compare_values(a, b) > 0);
  if (op == "<=") return Value::boolean(compare_values(a, b) <= 0);
  if (op == ">=") return Value::boolean(compare_values(a, b) >= 0);
  if (op == "~") return Value::str(a.to_str() + b.to_str());
  if (op == "in" || op == "not in") {
    bool found = false;
    if (b.is_string()) {
      if (!a.is_string()) fail(e.line, "'in <string>' needs a string on the left");
      found = b.s.find(a.s) != std::string::npos;
    } else if (b.is_list()) {
      for (auto& x : *b.list) found = found || values_equal(a, x);
    } else if (b.is_dict()) {
      found = a.is_string() && b.dict->find(a.s) != nullptr;
    } else if (!b.is_undefined()) {
      fail(e.line, std::string("'in' needs a string, list or dict, got ") + b.type_name());
    }
    return Value::boolean(found != (op == "not in"));
  }
  if (op == "+") {
    if (a.is_string() && b.is_string()) return Value::str(a.s + b.s);
    if (a.is_list() && b.is_list()) {
      ValueList l = *a.list;
      l.insert(l.end(), b.list->begin(), b.list->end());
      return Value::make_list(std::move(l));
    }
  }
  if (op == "*" && a.is_string() && b.kind == Value::Kind::Int) {
    std::string s;
    for (int64_t k = 0; k < b.i; ++k) s += a.s;
    return Value::str(s);
  }
  if (!a.is_number() || !b.is_number())
    fail(e.line, std::string("unsupported operand types for ") + op + ": " + a.type_name() + " and " +
                     b.type_name());
  bool ints = a.kind == Value::Kind::Int && b.kind == Value::Kind::Int;
  double x = a.as_double(), y = b.as_double();
  if (op == "+") return ints ? Value::integer(a.i + b.i) : Value::real(x + y);
  if (op == "-") return ints ? Value::integer(a.i - b.i) : Value::real(x - y);
  if (op == "*") return ints ? Value::integer(a.i * b.i) : Value::real(x * y);
  if (op == "**") return ints && b.i >= 0 ? Value::integer(int64_t(std::pow(x, y))) : Value::real(std::pow(x, y));
  if (y == 0) fail(e.line, "division by zero");
  if (op == "/") return Value::real(x / y);
  if (op == "//") return ints ? Value::integer(int64_t(std::floor(x / y))) : Value::real(std::floor(x / y));
  if (op == "%") {
    if (ints) return Value::integer(((a.i % b.i) + b.i) % b.i);
    return Value::real(x - y * std::floor(x / y));
  }
  fail(e.line, "unknown operator " + op);
}

Value Evaluator::make_macro(const Stmt& s, const ScopePtr& sc) {
  // The macro sees the scope it was defined in; each call opens a fresh child scope.
  const Stmt* def = &s;
  std::weak_ptr<Scope> defined_in = sc;
  return Value::callable([this, def, defined_in](ValueList& args, KwArgs& kw) -> Value {
    auto scope = std::make_shared<Scope>();
    scope->parent = defined_in.lock();
    for (size_t k = 0; k < def->targets.size(); ++k) {
      Value v;
      if (k < args.size()) {
        v = args[k];
      } else if (def->defaults[k]) {
        v = eval(*def->defaults[k], scope);
      }
      scope->vars[def->targets[k]] = v;
    }
    for (auto& [name, v] : kw) scope->vars[name] = v;
    std::string out;
    exec(def->body, scope, out);
    return Value::str(out);
  });
}

void Evaluator::exec_for(const Stmt& s, const ScopePtr& sc, std::string& out) {
  Value iterable = eval(*s.expr, sc);
  ValueList items;
  if (iterable.is_dict() && s.targets.size() == 2) {
    for (auto& [k, v] : iterable.dict->items) items.push_back(Value::make_list({Value::str(k), v}));
  } else {
    items = iterate(iterable);
  }
  auto scope = std::make_shared<Scope>();
  scope->parent = sc;
  auto bind = [&](const Value& item) {
    if (s.targets.size() == 1) {
      scope->vars[s.targets[0]] = item;
      return;
    }
    if (!item.is_list() || item.list->size() != s.targets.size())
      fail(s.line, "cannot unpack " + std::string(item.type_name()) + " into " +
                       std::to_string(s.targets.size()) + " loop variables");
    for (size_t k = 0; k < s.targets.size(); ++k) scope->vars[s.targets[k]] = (*item.list)[k];
  };
  if (s.cond) {  // `for x in xs if cond`: filtered before loop.* is computed, as in Jinja
    ValueList kept;
    for (auto& item : items) {
      bind(item);
      if (eval(*s.cond, scope).truthy()) kept.push_back(item);
    }
    items = std::move(kept);
  }
  int64_t n = int64_t(items.size());
  for (int64_t k = 0; k < n; ++k) {
    bind(items[size_t(k)]);
    Value loop = Value::make_dict();
    loop.dict->set("index", Value::integer(k + 1));
    loop.dict->set("index0", Value::integer(k));
    loop.dict->set("revindex", Value::integer(n - k));
    loop.dict->set("revindex0", Value::integer(n - k - 1));
    loop.dict->set("first", Value::boolean(k == 0));
    loop.dict->set("last", Value::boolean(k == n - 1));
    loop.dict->set("length", Value::integer(n));
    loop.dict->set("previtem", k > 0 ? items[size_t(k - 1)] : Value());
    loop.dict->set("nextitem", k + 1 < n ? items[size_t(k + 1)] : Value());
    scope->vars["loop"] = loop;
    Flow f = exec(s.body, scope, out);
    if (f == Flow::Break) break;
  }
  if (n == 0) exec(s.else_body, sc, out);
}

Flow Evaluator::exec_stmt(const Stmt& s, const ScopePtr& sc, std::string& out) {
  switch (s.kind) {
    case Stmt::Kind::Text: out += s.text; break;
    case Stmt::Kind::Output: out += eval(*s.expr, sc).to_str(); break;
    case Stmt::Kind::If:
      for (auto& [cond, body] : s.branches)
        if (!cond || eval(*cond, sc).truthy()) return exec(body, sc, out);
      break;
    case Stmt::Kind::For: exec_for(s, sc, out); break;
    case Stmt::Kind::Set: {
      Value v = eval(*s.expr, sc);
      if (s.target_obj) {
        Value obj = eval(*s.target_obj, sc);
        if (!obj.is_namespace) fail(s.line, "cannot set attribute '" + s.attr + "' on " + obj.type_name());
        obj.dict->set(s.attr, v);
      } else if (s.targets.size() == 1) {
        sc->vars[s.targets[0]] = v;
      } else {
        if (!v.is_list() || v.list->size() != s.targets.size()) fail(s.line, "cannot unpack value in set");
        for (size_t k = 0; k < s.targets.size(); ++k) sc->vars[s.targets[k]] = (*v.list)[k];
      }
      break;
    }
    case Stmt::Kind::SetBlock: {
      std::string captured;
      exec(s.body, sc, captured);
      sc->vars[s.targets[0]] = Value::str(captured);
      break;
    }
    case Stmt::Kind::Macro: sc->vars[s.attr] = make_macro(s, sc); break;
    case Stmt::Kind::CallBlock: {
      // caller() renders the block body in the calling scope.
      const Stmt* def = &s;
      auto scope = std::make_shared<Scope>();
      scope->parent = sc;
      std::weak_ptr<Scope> weak = scope;
      scope->vars["caller"] = Value::callable([this, def, weak](ValueList&, KwArgs&) {
        std::string o;
        exec(def->body, weak.lock(), o);
        return Value::str(o);
      });
      // The macro sees its definition scope, so caller() travels as a keyword argument.
      ValueList args;
      KwArgs kw;
      for (size_t k = 1; k < s.expr->args.size(); ++k) args.push_back(eval(*s.expr->args[k], sc));
      for (auto& [name, x] : s.expr->kwargs) kw.emplace_back(name, eval(*x, sc));
      kw.emplace_back("caller", scope->vars["caller"]);
      Value fn = eval(*s.expr->args[0], sc);
      if (fn.kind != Value::Kind::Callable) fail(s.line, "{% call %} needs a macro");
      out += call(fn, args, kw).to_str();
      break;
    }
    case Stmt::Kind::FilterBlock: {
      std::string captured;
      exec(s.body, sc, captured);
      Value v = Value::str(captured);
      ValueList args;
      KwArgs kw;
      out += apply_filter(s.attr, v, args, kw, [](const Value&, ValueList&) { return Value(); }).to_str();
      break;
    }
    case Stmt::Kind::Break: return Flow::Break;
    case Stmt::Kind::Continue: return Flow::Continue;
  }
  return Flow::Normal;
}

Flow Evaluator::exec(const Body& body, const ScopePtr& sc, std::string& out) {
  for (auto& s : body) {
    Flow f = exec_stmt(*s, sc, out);
    if (f != Flow::Normal) return f;
  }
  return Flow::Normal;
}

}  // namespace

void render_body(const Body& body, const ScopePtr& globals, std::string& out) {
  Evaluator ev;
  auto top = std::make_shared<Scope>();
  top->parent = globals;
  ev.exec(body, top, out);
}

}  // namespace tern::jinja
