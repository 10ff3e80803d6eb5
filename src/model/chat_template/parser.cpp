#include "model/chat_template/parser.h"

namespace tern::jinja {
namespace {

using TK = Token::Kind;

class Parser {
 public:
  explicit Parser(const std::vector<Token>& t) : t_(t) {}

  Body parse_all() {
    Body body = parse_body({});
    if (peek().kind != TK::End) fail(peek().line, "unexpected '{% " + end_tag_ + " %}'");
    return body;
  }

 private:
  const std::vector<Token>& t_;
  size_t p_ = 0;
  std::string end_tag_;  // the tag name that stopped the last parse_body

  [[noreturn]] void fail(int line, const std::string& what) {
    throw TemplateError("line " + std::to_string(line) + ": " + what);
  }
  const Token& peek(size_t ahead = 0) const { return t_[std::min(p_ + ahead, t_.size() - 1)]; }
  const Token& next() { return t_[p_ < t_.size() - 1 ? p_++ : p_]; }
  bool is_op(const char* op, size_t ahead = 0) const {
    return peek(ahead).kind == TK::Op && peek(ahead).text == op;
  }
  bool is_name(const char* n, size_t ahead = 0) const {
    return peek(ahead).kind == TK::Name && peek(ahead).text == n;
  }
  void expect_op(const char* op) {
    if (!is_op(op)) fail(peek().line, std::string("expected '") + op + "', got '" + peek().text + "'");
    ++p_;
  }
  std::string expect_name() {
    if (peek().kind != TK::Name) fail(peek().line, "expected a name, got '" + peek().text + "'");
    return next().text;
  }
  void expect_stmt_close() {
    if (peek().kind != TK::StmtClose) fail(peek().line, "expected '%}', got '" + peek().text + "'");
    ++p_;
  }

  // Parses statements until a {% tag %} whose name is in `stops` (left unconsumed after the name).
  Body parse_body(const std::vector<std::string>& stops) {
    Body body;
    while (true) {
      const Token& tok = peek();
      if (tok.kind == TK::End) {
        if (!stops.empty()) fail(tok.line, "missing '{% " + stops.back() + " %}'");
        return body;
      }
      if (tok.kind == TK::Text) {
        auto s = std::make_unique<Stmt>();
        s->kind = Stmt::Kind::Text;
        s->text = tok.text;
        s->line = tok.line;
        body.push_back(std::move(s));
        ++p_;
      } else if (tok.kind == TK::ExprOpen) {
        ++p_;
        auto s = std::make_unique<Stmt>();
        s->kind = Stmt::Kind::Output;
        s->line = tok.line;
        s->expr = parse_expr();
        if (peek().kind != TK::ExprClose) fail(peek().line, "expected '}}', got '" + peek().text + "'");
        ++p_;
        body.push_back(std::move(s));
      } else if (tok.kind == TK::StmtOpen) {
        const Token& name = peek(1);
        if (name.kind != TK::Name) fail(name.line, "expected a tag name");
        for (auto& stop : stops) {
          if (name.text == stop) {
            p_ += 2;
            end_tag_ = stop;
            return body;
          }
        }
        if (name.text.rfind("end", 0) == 0 || name.text == "else" || name.text == "elif")
          fail(name.line, "unexpected '{% " + name.text + " %}'");
        p_ += 2;
        body.push_back(parse_statement(name.text, name.line));
      } else {
        fail(tok.line, "unexpected token '" + tok.text + "'");
      }
    }
  }

  StmtPtr parse_statement(const std::string& tag, int line) {
    auto s = std::make_unique<Stmt>();
    s->line = line;
    if (tag == "if") {
      s->kind = Stmt::Kind::If;
      ExprPtr cond = parse_expr();
      expect_stmt_close();
      while (true) {
        Body b = parse_body({"elif", "else", "endif"});
        s->branches.emplace_back(std::move(cond), std::move(b));
        if (end_tag_ == "endif") break;
        if (end_tag_ == "else") {
          expect_stmt_close();
          s->branches.emplace_back(nullptr, parse_body({"endif"}));
          break;
        }
        cond = parse_expr();
        expect_stmt_close();
      }
      expect_stmt_close();
    } else if (tag == "for") {
      s->kind = Stmt::Kind::For;
      s->targets.push_back(expect_name());
      while (is_op(",")) {
        ++p_;
        s->targets.push_back(expect_name());
      }
      if (!is_name("in")) fail(peek().line, "expected 'in' in for loop");
      ++p_;
      s->expr = parse_ternary(false);
      if (is_name("if")) {
        ++p_;
        s->cond = parse_ternary(false);
      }
      if (is_name("recursive")) fail(peek().line, "unsupported construct: recursive for loop");
      expect_stmt_close();
      s->body = parse_body({"else", "endfor"});
      if (end_tag_ == "else") {
        expect_stmt_close();
        s->else_body = parse_body({"endfor"});
      }
      expect_stmt_close();
    } else if (tag == "set") {
      std::string first = expect_name();
      if (is_op(".")) {
        ++p_;
        s->target_obj = std::make_unique<Expr>();
        s->target_obj->kind = Expr::Kind::Name;
        s->target_obj->name = first;
        s->target_obj->line = line;
        s->attr = expect_name();
      } else {
        s->targets.push_back(first);
        while (is_op(",")) {
          ++p_;
          s->targets.push_back(expect_name());
        }
      }
      if (is_op("=")) {
        ++p_;
        s->kind = Stmt::Kind::Set;
        s->expr = parse_expr();
        expect_stmt_close();
      } else {
        if (s->target_obj || s->targets.size() != 1) fail(line, "block set needs one plain name");
        s->kind = Stmt::Kind::SetBlock;
        expect_stmt_close();
        s->body = parse_body({"endset"});
        expect_stmt_close();
      }
    } else if (tag == "macro") {
      s->kind = Stmt::Kind::Macro;
      s->attr = expect_name();
      expect_op("(");
      while (!is_op(")")) {
        s->targets.push_back(expect_name());
        if (is_op("=")) {
          ++p_;
          s->defaults.push_back(parse_expr());
        } else {
          s->defaults.push_back(nullptr);
        }
        if (!is_op(")")) expect_op(",");
      }
      ++p_;
      expect_stmt_close();
      s->body = parse_body({"endmacro"});
      expect_stmt_close();
    } else if (tag == "call") {
      s->kind = Stmt::Kind::CallBlock;
      if (is_op("(")) fail(line, "unsupported construct: call block with caller arguments");
      s->expr = parse_expr();
      if (s->expr->kind != Expr::Kind::Call) fail(line, "{% call %} needs a macro call");
      expect_stmt_close();
      s->body = parse_body({"endcall"});
      expect_stmt_close();
    } else if (tag == "filter") {
      s->kind = Stmt::Kind::FilterBlock;
      s->attr = expect_name();
      if (!is_known_filter(s->attr)) fail(line, "unsupported filter '" + s->attr + "'");
      expect_stmt_close();
      s->body = parse_body({"endfilter"});
      expect_stmt_close();
    } else if (tag == "break" || tag == "continue") {
      s->kind = tag == "break" ? Stmt::Kind::Break : Stmt::Kind::Continue;
      expect_stmt_close();
    } else {
      fail(line, "unsupported tag '{% " + tag + " %}'");
    }
    return s;
  }

  ExprPtr node(Expr::Kind k, int line) {
    auto e = std::make_unique<Expr>();
    e->kind = k;
    e->line = line;
    return e;
  }

 public:
  // expr := ternary (',' ternary)*  — a bare tuple only where a full expression is allowed.
  ExprPtr parse_expr() { return parse_ternary(true); }

 private:
  ExprPtr parse_ternary(bool allow_if) {
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
      return t;
    }
    return e;
  }
  ExprPtr parse_or() {
    ExprPtr e = parse_and();
    while (is_name("or")) {
      auto n = node(Expr::Kind::Or, next().line);
      n->args.push_back(std::move(e));
      n->args.push_back(parse_and());
      e = std::move(n);
    }
    return e;
  }
  ExprPtr parse_and() {
    ExprPtr e = parse_not();
    while (is_name("and")) {
      auto n = node(Expr::Kind::And, next().line);
      n->args.push_back(std::move(e));
      n->args.push_back(parse_not());
      e = std::move(n);
    }
    return e;
  }
  ExprPtr parse_not() {
    if (is_name("not")) {
      auto n = node(Expr::Kind::Unary, next().line);
      n->name = "not";
      n->args.push_back(parse_not());
      return n;
    }
    return parse_compare();
  }
  ExprPtr binary(std::string op, ExprPtr a, ExprPtr b, int line) {
    auto n = node(Expr::Kind::Binary, line);
    n->name = std::move(op);
    n->args.push_back(std::move(a));
    n->args.push_back(std::move(b));
    return n;
  }
  ExprPtr parse_compare() {
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
  ExprPtr parse_add() {
    ExprPtr e = parse_concat();
    while (is_op("+") || is_op("-")) {
      const Token& op = next();
      e = binary(op.text, std::move(e), parse_concat(), op.line);
    }
    return e;
  }
  ExprPtr parse_concat() {
    ExprPtr e = parse_mul();
    while (is_op("~")) {
      const Token& op = next();
      e = binary("~", std::move(e), parse_mul(), op.line);
    }
    return e;
  }
  ExprPtr parse_mul() {
    ExprPtr e = parse_pow();
    while (is_op("*") || is_op("/") || is_op("//") || is_op("%")) {
      const Token& op = next();
      e = binary(op.text, std::move(e), parse_pow(), op.line);
    }
    return e;
  }
  ExprPtr parse_pow() {
    ExprPtr e = parse_unary();
    while (is_op("**")) {
      const Token& op = next();
      e = binary("**", std::move(e), parse_unary(), op.line);
    }
    return e;
  }
  ExprPtr parse_unary() {
    if (is_op("-") || is_op("+")) {
      const Token& op = next();
      auto n = node(Expr::Kind::Unary, op.line);
      n->name = op.text;
      n->args.push_back(parse_unary());
      return parse_filters(std::move(n));
    }
    return parse_filters(parse_postfix(parse_primary()));
  }
  void parse_call_args(Expr& call) {
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
  ExprPtr parse_filters(ExprPtr e) {
    while (true) {
      if (is_op("|")) {
        int line = next().line;
        auto f = node(Expr::Kind::Filter, line);
        f->name = expect_name();
        if (!is_known_filter(f->name)) fail(line, "unsupported filter '" + f->name + "'");
        f->args.push_back(std::move(e));
        if (is_op("(")) parse_call_args(*f);
        e = std::move(f);
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
        e = std::move(t);
      } else {
        return e;
      }
    }
  }
  ExprPtr parse_postfix(ExprPtr e) {
    while (true) {
      int line = peek().line;
      if (is_op(".")) {
        ++p_;
        auto a = node(Expr::Kind::Attr, line);
        a->name = peek().kind == TK::Int ? next().text : expect_name();
        a->args.push_back(std::move(e));
        e = std::move(a);
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
        e = std::move(s);
      } else if (is_op("(")) {
        auto c = node(Expr::Kind::Call, line);
        c->args.push_back(std::move(e));
        parse_call_args(*c);
        e = std::move(c);
      } else {
        return e;
      }
    }
  }
  ExprPtr parse_primary() {
    const Token& tok = next();
    int line = tok.line;
    auto lit = [&](Value v) {
      auto n = node(Expr::Kind::Literal, line);
      n->literal = std::move(v);
      return n;
    };
    switch (tok.kind) {
      case TK::Int: return lit(Value::integer(std::stoll(tok.text)));
      case TK::Float: return lit(Value::real(std::stod(tok.text)));
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
      return t;
    }
    if (tok.text == "[") {
      auto l = node(Expr::Kind::List, line);
      while (!is_op("]")) {
        l->args.push_back(parse_expr());
        if (!is_op("]")) expect_op(",");
      }
      ++p_;
      return l;
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
      return d;
    }
    fail(line, "unexpected '" + tok.text + "' in expression");
  }
};

}  // namespace

Result<Body> parse_template(const std::vector<Token>& tokens) {
  try {
    Parser p(tokens);
    return p.parse_all();
  } catch (const TemplateError& e) {
    return Status::error(e.what());
  }
}

}  // namespace tern::jinja
