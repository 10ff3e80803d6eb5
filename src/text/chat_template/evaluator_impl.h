// The tree-walking evaluator's class, shared by evaluator.cpp (statements, expressions, macros, loops) and
// evaluator_ops.cpp (binary operators and slicing). Internal to the chat-template module.
#pragma once

#include <string>

#include "text/chat_template/budget.h"
#include "text/chat_template/evaluator.h"

namespace tern::jinja {

enum class Flow { Normal, Break, Continue };

[[noreturn]] inline void fail_at(int line, const std::string& what) {
  throw TemplateError("line " + std::to_string(line) + ": " + what);
}

struct Evaluator {
  Budget& bud;
  const std::string* top = nullptr;  // the render's output; other buffers (set blocks, macro bodies) are strings

  // Every expression and statement passes through eval / exec_stmt, which count a frame and a step.
  Value eval(const Expr& e, const ScopePtr& sc);
  Flow exec(const Body& body, const ScopePtr& sc, std::string& out);
  Flow exec_stmt(const Stmt& s, const ScopePtr& sc, std::string& out);

  Value eval_node(const Expr& e, const ScopePtr& sc);
  Flow exec_node(const Stmt& s, const ScopePtr& sc, std::string& out);
  void exec_for(const Stmt& s, const ScopePtr& sc, std::string& out);
  Value call(const Value& fn, ValueList& args, KwArgs& kw) { return (*fn.fn)(args, kw); }
  Value make_macro(const Stmt& s, const ScopePtr& sc);
  // out += text, within the output bound (top) or the string bound (any other buffer).
  void emit(std::string& out, const std::string& text);

  Value binary(const Expr& e, const ScopePtr& sc);  // evaluator_ops.cpp
  Value slice(const Expr& e, const ScopePtr& sc);
};

}  // namespace tern::jinja
