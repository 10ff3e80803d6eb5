#include "text/chat_template/evaluator_impl.h"

namespace tern::jinja {

void Evaluator::emit(std::string& out, const std::string& text) {
  const bool is_top = &out == top;
  const size_t limit = is_top ? bud.limits().max_output_bytes : bud.limits().max_string_bytes;
  if (out.size() + text.size() > limit) {
    if (is_top) throw LimitError("the rendered prompt exceeds " + human_bytes(limit));
    bud.string_size(out.size() + text.size());
  }
  bud.bytes(text.size());
  out += text;
}

Value Evaluator::eval(const Expr& e, const ScopePtr& sc) {
  Budget::Frame frame(bud);
  bud.step();
  try {
    Value v = eval_node(e, sc);
    // Strings are values: every result is a copy, so its bytes count as built.
    if (v.is_string()) bud.built(v.s.size());
    return v;
  } catch (const TemplateError& err) {
    std::string msg = err.what();
    if (msg.rfind("line ", 0) == 0) throw;
    fail_at(e.line, msg);
  }
}

Value Evaluator::eval_node(const Expr& e, const ScopePtr& sc) {
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
        d.dict->set(key.to_str(bud), eval(*e.args[k + 1], sc));
      }
      return d;
    }
    case Expr::Kind::Unary: {
      Value v = eval(*e.args[0], sc);
      if (e.name == "not") return Value::boolean(!v.truthy());
      if (!v.is_number()) fail_at(e.line, std::string("bad operand for unary ") + e.name + ": " + v.type_name());
      if (e.name == "+") return v;
      if (v.kind == Value::Kind::Int) {
        if (v.i == INT64_MIN) fail_at(e.line, "integer overflow in unary -");
        return Value::integer(-v.i);
      }
      return Value::real(-v.f);
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
    case Expr::Kind::Attr: return get_attr(eval(*e.args[0], sc), e.name, bud);
    case Expr::Kind::Subscript: return get_item(eval(*e.args[0], sc), eval(*e.args[1], sc), bud);
    case Expr::Kind::Slice: return slice(e, sc);
    case Expr::Kind::Call: {
      ValueList args;
      KwArgs kw;
      for (size_t k = 1; k < e.args.size(); ++k) args.push_back(eval(*e.args[k], sc));
      for (auto& [name, x] : e.kwargs) kw.emplace_back(name, eval(*x, sc));
      const Expr& callee = *e.args[0];
      if (callee.kind == Expr::Kind::Attr) {
        Value obj = eval(*callee.args[0], sc);
        Value member = obj.is_dict() ? get_attr(obj, callee.name, bud) : Value();
        if (member.kind == Value::Kind::Callable) return call(member, args, kw);
        return call_method(obj, callee.name, args, kw, bud);
      }
      Value fn = eval(callee, sc);
      if (fn.kind != Value::Kind::Callable)
        fail_at(e.line, (callee.kind == Expr::Kind::Name ? "'" + callee.name + "'" : std::string("value")) +
                            " is not callable");
      return call(fn, args, kw);
    }
    case Expr::Kind::Filter: {
      Value subject = eval(*e.args[0], sc);
      ValueList args;
      KwArgs kw;
      for (size_t k = 1; k < e.args.size(); ++k) args.push_back(eval(*e.args[k], sc));
      for (auto& [name, x] : e.kwargs) kw.emplace_back(name, eval(*x, sc));
      return apply_filter(e.name, subject, args, kw, bud);
    }
    case Expr::Kind::Test: {
      if (e.name == "defined" || e.name == "undefined") {
        bool defined = !eval(*e.args[0], sc).is_undefined();
        return Value::boolean(((e.name == "defined") == defined) != e.negated);
      }
      Value subject = eval(*e.args[0], sc);
      ValueList args;
      for (size_t k = 1; k < e.args.size(); ++k) args.push_back(eval(*e.args[k], sc));
      return Value::boolean(apply_test(e.name, subject, args, bud) != e.negated);
    }
  }
  return Value();
}

Value Evaluator::make_macro(const Stmt& s, const ScopePtr& sc) {
  // The macro sees the scope it was defined in (held weakly: the scope holds the macro); each call opens a fresh
  // child scope.
  const Stmt* def = &s;
  std::weak_ptr<Scope> defined_in = sc;
  return Value::callable([this, def, defined_in](ValueList& args, KwArgs& kw) -> Value {
    Budget::Call call_guard(bud);
    auto scope = std::make_shared<Scope>();
    scope->parent = defined_in.lock();
    if (!scope->parent)
      fail_at(def->line, "macro '" + def->attr + "' called after the block that defined it ended (not supported)");
    for (size_t k = 0; k < def->targets.size(); ++k) {
      Value v;
      if (k < args.size()) {
        v = args[k];
        bud.built(v.s.size());
      } else if (def->defaults[k]) {
        v = eval(*def->defaults[k], scope);
      }
      scope->vars[def->targets[k]] = v;
    }
    for (auto& [name, v] : kw) {
      bud.built(v.s.size());
      scope->vars[name] = v;
    }
    std::string out;
    exec(def->body, scope, out);
    return Value::str(std::move(out));
  });
}

void Evaluator::exec_for(const Stmt& s, const ScopePtr& sc, std::string& out) {
  Value iterable = eval(*s.expr, sc);
  ValueList items;
  if (iterable.is_dict() && s.targets.size() == 2) {
    bud.list_size(iterable.dict->items.size());
    for (auto& [k, v] : iterable.dict->items) {
      bud.built(k.size() + v.s.size());
      items.push_back(Value::make_list({Value::str(k), v}));
    }
  } else {
    items = iterate(iterable, bud);
  }
  auto scope = std::make_shared<Scope>();
  scope->parent = sc;
  auto bind = [&](const Value& item) {
    bud.built(item.s.size());
    if (s.targets.size() == 1) {
      scope->vars[s.targets[0]] = item;
      return;
    }
    if (!item.is_list() || item.list->size() != s.targets.size())
      fail_at(s.line, "cannot unpack " + std::string(item.type_name()) + " into " +
                          std::to_string(s.targets.size()) + " loop variables");
    for (size_t k = 0; k < s.targets.size(); ++k) {
      bud.built((*item.list)[k].s.size());
      scope->vars[s.targets[k]] = (*item.list)[k];
    }
  };
  if (s.cond) {  // `for x in xs if cond`: filtered before loop.* is computed, as in Jinja
    ValueList kept;
    for (auto& item : items) {
      bud.loop_iteration();
      bind(item);
      if (eval(*s.cond, scope).truthy()) kept.push_back(item);
    }
    items = std::move(kept);
  }
  int64_t n = int64_t(items.size());
  for (int64_t k = 0; k < n; ++k) {
    bud.loop_iteration();
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
  Budget::Frame frame(bud);
  bud.step();
  try {
    return exec_node(s, sc, out);
  } catch (const TemplateError& err) {
    std::string msg = err.what();
    if (msg.rfind("line ", 0) == 0) throw;
    fail_at(s.line, msg);
  }
}

Flow Evaluator::exec_node(const Stmt& s, const ScopePtr& sc, std::string& out) {
  switch (s.kind) {
    case Stmt::Kind::Text: emit(out, s.text); break;
    case Stmt::Kind::Output: emit(out, eval(*s.expr, sc).to_str(bud)); break;
    case Stmt::Kind::If:
      for (auto& [cond, body] : s.branches)
        if (!cond || eval(*cond, sc).truthy()) return exec(body, sc, out);
      break;
    case Stmt::Kind::For: exec_for(s, sc, out); break;
    case Stmt::Kind::Set: {
      Value v = eval(*s.expr, sc);
      if (s.target_obj) {
        Value obj = eval(*s.target_obj, sc);
        if (!obj.is_namespace) fail_at(s.line, "cannot set attribute '" + s.attr + "' on " + obj.type_name());
        obj.dict->set(s.attr, v);
      } else if (s.targets.size() == 1) {
        sc->vars[s.targets[0]] = v;
      } else {
        if (!v.is_list() || v.list->size() != s.targets.size()) fail_at(s.line, "cannot unpack value in set");
        for (size_t k = 0; k < s.targets.size(); ++k) sc->vars[s.targets[k]] = (*v.list)[k];
      }
      break;
    }
    case Stmt::Kind::SetBlock: {
      std::string captured;
      exec(s.body, sc, captured);
      sc->vars[s.targets[0]] = Value::str(std::move(captured));
      break;
    }
    case Stmt::Kind::Macro: sc->vars[s.attr] = make_macro(s, sc); break;
    case Stmt::Kind::CallBlock: {
      // caller() renders the block body in the calling scope, while that scope lives.
      const Stmt* def = &s;
      auto scope = std::make_shared<Scope>();
      scope->parent = sc;
      std::weak_ptr<Scope> weak = scope;
      scope->vars["caller"] = Value::callable([this, def, weak](ValueList&, KwArgs&) {
        Budget::Call call_guard(bud);
        ScopePtr at = weak.lock();
        if (!at) fail_at(def->line, "caller() called after its {% call %} block ended");
        std::string o;
        exec(def->body, at, o);
        return Value::str(std::move(o));
      });
      // The macro sees its definition scope, so caller() travels as a keyword argument.
      ValueList args;
      KwArgs kw;
      for (size_t k = 1; k < s.expr->args.size(); ++k) args.push_back(eval(*s.expr->args[k], sc));
      for (auto& [name, x] : s.expr->kwargs) kw.emplace_back(name, eval(*x, sc));
      kw.emplace_back("caller", scope->vars["caller"]);
      Value fn = eval(*s.expr->args[0], sc);
      if (fn.kind != Value::Kind::Callable) fail_at(s.line, "{% call %} needs a macro");
      emit(out, call(fn, args, kw).to_str(bud));
      break;
    }
    case Stmt::Kind::FilterBlock: {
      std::string captured;
      exec(s.body, sc, captured);
      Value v = Value::str(std::move(captured));
      ValueList args;
      KwArgs kw;
      emit(out, apply_filter(s.attr, v, args, kw, bud).to_str(bud));
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

void render_body(const Body& body, const ScopePtr& globals, std::string& out, Budget& budget) {
  Evaluator ev{budget, &out};
  auto top = std::make_shared<Scope>();
  top->parent = globals;
  ev.exec(body, top, out);
}

}  // namespace tern::jinja
