// Syntax tree of a parsed chat template. Expressions and statements carry their source line so
// runtime errors can name it.
#pragma once

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "text/chat_template/value.h"

namespace tern::jinja {

struct Expr;
using ExprPtr = std::unique_ptr<Expr>;

struct Expr {
  enum class Kind {
    Literal, Name, List, Tuple, Dict, Unary, Binary, And, Or, Ternary, Attr, Subscript, Slice,
    Call, Filter, Test
  };
  Kind kind;
  int line = 0;
  int depth = 1;                   // 1 + the deepest operand's depth (bounded by the parser)
  Value literal;                   // Literal
  std::string name;                // Name, Attr, Unary/Binary operator, Filter/Test name
  std::vector<ExprPtr> args;       // operands / elements / call args (Dict: key, value pairs)
  std::vector<std::pair<std::string, ExprPtr>> kwargs;
  bool negated = false;            // `is not`
};

struct Stmt;
using StmtPtr = std::unique_ptr<Stmt>;
using Body = std::vector<StmtPtr>;

struct Stmt {
  enum class Kind { Text, Output, If, For, Set, SetBlock, Macro, CallBlock, FilterBlock, Break, Continue };
  Kind kind;
  int line = 0;
  std::string text;                           // Text
  ExprPtr expr;                               // Output value, For iterable, Set value, CallBlock call
  std::vector<std::pair<ExprPtr, Body>> branches;  // If: (condition or null for else, body)
  std::vector<std::string> targets;           // For loop vars / Set names / Macro params
  ExprPtr target_obj;                         // Set ns.attr: the object expression
  std::string attr;                           // Set ns.attr: attribute; Macro name; FilterBlock filter
  ExprPtr cond;                               // For `if` filter
  std::vector<ExprPtr> defaults;              // Macro param defaults (null if none)
  Body body, else_body;
};

}  // namespace tern::jinja
