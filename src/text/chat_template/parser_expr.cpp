// Expressions, one function per precedence level, loosest first: ternary, or, and, not, comparisons, + -, ~,
// * / // %, **, unary; then postfix (calls, attributes, subscripts, filters and `is` tests) and primaries
// (literals, names, lists, dicts, parenthesized expressions and tuples).
#include <charconv>
#include <cstdlib>

#include "text/chat_template/parser_impl.h"

namespace tern::jinja {

ExprPtr Parser::parse_ternary(bool allow_if) {
  Deeper deeper(*this);
  ExprPtr e = parse_or();
  if (allow_if && is_name("if")) {
    int line = next().line;
    auto t = node(Expr::Kind::Ternary, line);
    ExprPtr cond = parse_or();
    ExprPtr other;
    if (is_name("else")) {
      ++p_;
      other = parse_ternary(true);
    }
    t->args.push_back(std::move(cond));
    t->args.push_back(std::move(e));
    t->args.push_back(std::move(other));
    return seal(std::move(t));
  }
  return e;
}

ExprPtr Parser::parse_or() {
  ExprPtr e = parse_and();
  while (is_name("or")) {
    auto n = node(Expr::Kind::Or, next().line);
    n->args.push_back(std::move(e));
    n->args.push_back(parse_and());
    e = seal(std::move(n));
  }
  return e;
}

ExprPtr Parser::parse_and() {
  ExprPtr e = parse_not();
  while (is_name("and")) {
    auto n = node(Expr::Kind::And, next().line);
    n->args.push_back(std::move(e));
    n->args.push_back(parse_not());
    e = seal(std::move(n));
  }
  return e;
}

ExprPtr Parser::parse_not() {
  if (is_name("not")) {
    Deeper deeper(*this);
    auto n = node(Expr::Kind::Unary, next().line);
    n->name = "not";
    n->args.push_back(parse_not());
    return seal(std::move(n));
  }
  return parse_compare();
}

ExprPtr Parser::binary(std::string op, ExprPtr a, ExprPtr b, int line) {
  auto n = node(Expr::Kind::Binary, line);
  n->name = std::move(op);
  n->args.push_back(std::move(a));
  n->args.push_back(std::move(b));
  return seal(std::move(n));
}

ExprPtr Parser::parse_compare() {
  ExprPtr e = parse_add();
  while (true) {
    int line = peek().line;
    static const char* cmp[] = {"==", "!=", "<", ">", "<=", ">="};
    bool found = false;
    for (const char* op : cmp) {
      if (is_op(op)) {
        ++p_;
        e = binary(op, std::move(e), parse_add(), line);
        found = true;
        break;
      }
    }
    if (found) continue;
    if (is_name("in")) {
      ++p_;
      e = binary("in", std::move(e), parse_add(), line);
    } else if (is_name("not") && is_name("in", 1)) {
      p_ += 2;
      e = binary("not in", std::move(e), parse_add(), line);
    } else {
      return e;
    }
  }
}

ExprPtr Parser::parse_add() {
  ExprPtr e = parse_concat();
  while (is_op("+") || is_op("-")) {
    const Token& op = next();
    e = binary(op.text, std::move(e), parse_concat(), op.line);
  }
  return e;
}

ExprPtr Parser::parse_concat() {
  ExprPtr e = parse_mul();
  while (is_op("~")) {
    const Token& op = next();
    e = binary("~", std::move(e), parse_mul(), op.line);
  }
  return e;
}

ExprPtr Parser::parse_mul() {
  ExprPtr e = parse_pow();
  while (is_op("*") || is_op("/") || is_op("//") || is_op("%")) {
    const Token& op = next();
    e = binary(op.text, std::move(e), parse_pow(), op.line);
  }
  return e;
}

ExprPtr Parser::parse_pow() {
  ExprPtr e = parse_unary();
  while (is_op("**")) {
    const Token& op = next();
    e = binary("**", std::move(e), parse_unary(), op.line);
  }
  return e;
}

ExprPtr Parser::parse_unary() {
  if (is_op("-") || is_op("+")) {
    Deeper deeper(*this);
    const Token& op = next();
    auto n = node(Expr::Kind::Unary, op.line);
    n->name = op.text;
    n->args.push_back(parse_unary());
    return parse_filters(seal(std::move(n)));
  }
  return parse_filters(parse_postfix(parse_primary()));
}

void Parser::parse_call_args(Expr& call) {
  expect_op("(");
  while (!is_op(")")) {
    if (peek().kind == TK::Name && is_op("=", 1)) {
      std::string k = next().text;
      ++p_;
      call.kwargs.emplace_back(k, parse_ternary(true));
    } else {
      call.args.push_back(parse_ternary(true));
    }
    if (!is_op(")")) expect_op(",");
  }
  ++p_;
}

ExprPtr Parser::parse_filters(ExprPtr e) {
  while (true) {
    if (is_op("|")) {
      int line = next().line;
      auto f = node(Expr::Kind::Filter, line);
      f->name = expect_name();
      if (!is_known_filter(f->name)) fail(line, "unsupported filter '" + f->name + "'");
      f->args.push_back(std::move(e));
      if (is_op("(")) parse_call_args(*f);
      e = seal(std::move(f));
    } else if (is_name("is")) {
      int line = next().line;
      auto t = node(Expr::Kind::Test, line);
      if (is_name("not")) {
        ++p_;
        t->negated = true;
      }
      t->name = expect_name();
      if (!is_known_test(t->name)) fail(line, "unsupported test '" + t->name + "'");
      t->args.push_back(std::move(e));
      if (is_op("(")) {
        parse_call_args(*t);
      } else if (peek().kind == TK::String || peek().kind == TK::Int || peek().kind == TK::Float ||
                 (peek().kind == TK::Name && !is_name("and") && !is_name("or") && !is_name("if") &&
                  !is_name("else") && !is_name("is") && !is_name("not") && !is_name("in"))) {
        t->args.push_back(parse_postfix(parse_primary()));
      }
      e = seal(std::move(t));
    } else {
      return e;
    }
  }
}

ExprPtr Parser::parse_postfix(ExprPtr e) {
  while (true) {
    int line = peek().line;
    if (is_op(".")) {
      ++p_;
      auto a = node(Expr::Kind::Attr, line);
      a->name = peek().kind == TK::Int ? next().text : expect_name();
      a->args.push_back(std::move(e));
      e = seal(std::move(a));
    } else if (is_op("[")) {
      ++p_;
      ExprPtr parts[3];
      int nparts = 0;
      bool slice = false;
      while (true) {
        if (!is_op(":") && !is_op("]")) parts[nparts] = parse_expr();
        if (is_op(":")) {
          slice = true;
          if (++nparts > 2) fail(line, "too many ':' in slice");
          ++p_;
          continue;
        }
        break;
      }
      expect_op("]");
      auto s = node(slice ? Expr::Kind::Slice : Expr::Kind::Subscript, line);
      s->args.push_back(std::move(e));
      for (int k = 0; k < (slice ? 3 : 1); ++k) s->args.push_back(std::move(parts[k]));
      e = seal(std::move(s));
    } else if (is_op("(")) {
      auto c = node(Expr::Kind::Call, line);
      c->args.push_back(std::move(e));
      parse_call_args(*c);
      e = seal(std::move(c));
    } else {
      return e;
    }
  }
}

ExprPtr Parser::parse_primary() {
  const Token& tok = next();
  int line = tok.line;
  auto lit = [&](Value v) {
    auto n = node(Expr::Kind::Literal, line);
    n->literal = std::move(v);
    return n;
  };
  switch (tok.kind) {
    case TK::Int: {
      int64_t v = 0;
      auto [end, ec] = std::from_chars(tok.text.data(), tok.text.data() + tok.text.size(), v);
      if (ec != std::errc() || end != tok.text.data() + tok.text.size())
        fail(line, "integer literal " + tok.text.substr(0, 40) + " does not fit in 64 bits");
      return lit(Value::integer(v));
    }
    case TK::Float: return lit(Value::real(std::strtod(tok.text.c_str(), nullptr)));  // too large: inf, as Python
    case TK::String: {
      std::string s = tok.text;
      while (peek().kind == TK::String) s += next().text;  // adjacent literals concatenate
      return lit(Value::str(s));
    }
    case TK::Name: {
      const std::string& n = tok.text;
      if (n == "true" || n == "True") return lit(Value::boolean(true));
      if (n == "false" || n == "False") return lit(Value::boolean(false));
      if (n == "none" || n == "None") return lit(Value::none());
      auto e = node(Expr::Kind::Name, line);
      e->name = n;
      return e;
    }
    case TK::Op: break;
    default: fail(line, "unexpected '" + tok.text + "' in expression");
  }
  if (tok.text == "(") {
    if (is_op(")")) {
      ++p_;
      return node(Expr::Kind::Tuple, line);
    }
    ExprPtr first = parse_expr();
    if (!is_op(",")) {
      expect_op(")");
      return first;
    }
    auto t = node(Expr::Kind::Tuple, line);
    t->args.push_back(std::move(first));
    while (is_op(",")) {
      ++p_;
      if (is_op(")")) break;
      t->args.push_back(parse_expr());
    }
    expect_op(")");
    return seal(std::move(t));
  }
  if (tok.text == "[") {
    auto l = node(Expr::Kind::List, line);
    while (!is_op("]")) {
      l->args.push_back(parse_expr());
      if (!is_op("]")) expect_op(",");
    }
    ++p_;
    return seal(std::move(l));
  }
  if (tok.text == "{") {
    auto d = node(Expr::Kind::Dict, line);
    while (!is_op("}")) {
      d->args.push_back(parse_expr());
      expect_op(":");
      d->args.push_back(parse_expr());
      if (!is_op("}")) expect_op(",");
    }
    ++p_;
    return seal(std::move(d));
  }
  fail(line, "unexpected '" + tok.text + "' in expression");
}

}  // namespace tern::jinja
