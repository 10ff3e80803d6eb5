// Tree-walking evaluator: scopes, statements and expressions. Filters, tests, methods and global
// functions live in builtins.cpp and filters.cpp. Every step is charged to the render's Budget (budget.h).
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <string>

#include "text/chat_template/ast.h"

namespace tern::jinja {

class Budget;

// A scope: for-loop bodies and macro calls open one; `set` writes to the innermost.
struct Scope {
  std::shared_ptr<Scope> parent;
  std::map<std::string, Value> vars;
  const Value* lookup(const std::string& name) const {
    for (const Scope* s = this; s; s = s->parent.get()) {
      auto it = s->vars.find(name);
      if (it != s->vars.end()) return &it->second;
    }
    return nullptr;
  }
};
using ScopePtr = std::shared_ptr<Scope>;

// Renders `body` into `out` with `globals` (context + built-in functions) as the outer scope.
void render_body(const Body& body, const ScopePtr& globals, std::string& out, Budget& budget);

// builtins.cpp
Value apply_filter(const std::string& name, Value& subject, ValueList& args, KwArgs& kwargs, Budget& b);
bool apply_test(const std::string& name, const Value& subject, ValueList& args, Budget& b);
Value call_method(const Value& obj, const std::string& name, ValueList& args, KwArgs& kwargs, Budget& b);
void add_global_functions(Scope& scope, Budget& b);
Value get_attr(const Value& obj, const std::string& name, Budget& b);
Value get_item(const Value& obj, const Value& key, Budget& b);

}  // namespace tern::jinja
