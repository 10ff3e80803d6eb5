// Template structure: text, {{ output }} and {% statements %} (expressions are in parser_expr.cpp).
#include "text/chat_template/parser_impl.h"

namespace tern::jinja {

Body Parser::parse_all() {
  Body body = parse_body({});
  if (peek().kind != TK::End) fail(peek().line, "unexpected '{% " + end_tag_ + " %}'");
  return body;
}

// Parses statements until a {% tag %} whose name is in `stops` (left unconsumed after the name).
Body Parser::parse_body(const std::vector<std::string>& stops) {
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

StmtPtr Parser::parse_statement(const std::string& tag, int line) {
  Deeper deeper(*this);
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

Result<Body> parse_template(const std::vector<Token>& tokens, int max_nesting) {
  try {
    Parser p(tokens, max_nesting);
    return p.parse_all();
  } catch (const TemplateError& e) {
    return Status::error(e.what());
  }
}

}  // namespace tern::jinja
