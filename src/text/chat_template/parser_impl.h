// The Jinja parser's class, shared by its two halves: parser.cpp (template structure: text, output and
// {% statements %}) and parser_expr.cpp (expressions: precedence climbing, filters, tests, literals).
// Internal to the chat-template module; parser.h is the public entry point.
#pragma once

#include <algorithm>
#include <memory>
#include <string>
#include <vector>

#include "text/chat_template/ast.h"
#include "text/chat_template/lexer.h"
#include "text/chat_template/parser.h"

namespace tern::jinja {

using TK = Token::Kind;

// Recursive descent over the token list; errors throw TemplateError("line N: ..."), which parse_template turns
// into a Status.
class Parser {
 public:
  Parser(const std::vector<Token>& t, int max_nesting) : t_(t), max_nesting_(max_nesting) {}

  Body parse_all();

 private:
  const std::vector<Token>& t_;
  size_t p_ = 0;
  std::string end_tag_;  // the tag name that stopped the last parse_body
  const int max_nesting_;
  int depth_ = 0;        // how deep the parse functions recurse right now

  // Bounds the parser's own recursion (brackets, `not not`, `- -`, nested blocks): one level per instance alive.
  class Deeper {
   public:
    explicit Deeper(Parser& p) : p_(p) {
      if (++p_.depth_ > p_.max_nesting_) {
        --p_.depth_;
        p_.too_deep();
      }
    }
    ~Deeper() { --p_.depth_; }
    Deeper(const Deeper&) = delete;
    Deeper& operator=(const Deeper&) = delete;

   private:
    Parser& p_;
  };
  [[noreturn]] void too_deep() {
    fail(peek().line, "template limit: nesting deeper than " + std::to_string(max_nesting_) +
                          " (blocks, brackets or operator chains)");
  }
  // A finished expression node: its depth from its operands'. Operator chains (a ~ b ~ c ...) deepen the tree
  // without recursing here, so the tree is bounded too: the evaluator and the destructors walk it recursively.
  ExprPtr seal(ExprPtr e) {
    for (const auto& a : e->args)
      if (a) e->depth = std::max(e->depth, a->depth + 1);
    for (const auto& kv : e->kwargs) e->depth = std::max(e->depth, kv.second->depth + 1);
    if (e->depth > max_nesting_) too_deep();
    return e;
  }

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

  Body parse_body(const std::vector<std::string>& stops);  // parser.cpp
  StmtPtr parse_statement(const std::string& tag, int line);

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
  ExprPtr parse_ternary(bool allow_if);  // parser_expr.cpp
  ExprPtr parse_or();
  ExprPtr parse_and();
  ExprPtr parse_not();
  ExprPtr binary(std::string op, ExprPtr a, ExprPtr b, int line);
  ExprPtr parse_compare();
  ExprPtr parse_add();
  ExprPtr parse_concat();
  ExprPtr parse_mul();
  ExprPtr parse_pow();
  ExprPtr parse_unary();
  void parse_call_args(Expr& call);
  ExprPtr parse_filters(ExprPtr e);
  ExprPtr parse_postfix(ExprPtr e);
  ExprPtr parse_primary();
};

}  // namespace tern::jinja
