#include <fmt/format.h>

#include "constrain/grammar_ast.h"
#include "constrain/utf8_ranges.h"

namespace tern::constrain {
namespace {

void put_cp(std::string& out, uint32_t cp, bool in_class) {
  switch (cp) {
    case '\n': out += "\\n"; return;
    case '\r': out += "\\r"; return;
    case '\t': out += "\\t"; return;
    case '\\': out += "\\\\"; return;
    default: break;
  }
  if ((!in_class && cp == '"') || (in_class && (cp == ']' || cp == '-' || cp == '^' || cp == '['))) {
    out += '\\';
    out += char(cp);
    return;
  }
  if (cp < 0x20 || cp == 0x7f) {
    out += fmt::format("\\x{:02X}", cp);
    return;
  }
  if (cp >= 0xD800 && cp <= 0xDFFF) {  // no UTF-8 form: only a class bound can be one
    out += fmt::format("\\u{:04X}", cp);
    return;
  }
  append_utf8(out, cp);
}

void print(const Expr& e, const std::vector<std::string>& names, std::string& out, bool nested) {
  switch (e.kind) {
    case Expr::kLiteral:
      out += '"';
      for (uint32_t cp : e.cps) put_cp(out, cp, false);
      out += '"';
      return;
    case Expr::kClass:
      if (e.negated && e.ranges.empty()) {
        out += '.';
        return;
      }
      out += e.negated ? "[^" : "[";
      for (auto [lo, hi] : e.ranges) {
        put_cp(out, lo, true);
        if (hi != lo) {
          out += '-';
          put_cp(out, hi, true);
        }
      }
      out += ']';
      return;
    case Expr::kRef:
      out += names[size_t(e.rule)];
      return;
    case Expr::kToken:
      // By id, by a bracketed text (tern's `<[TOOL_CALLS]>`), or llama.cpp's `<think>` (the text is the whole).
      out += e.token >= 0 ? fmt::format("<[{}]>", e.token) : e.token_text[0] == '<' ? e.token_text : "<" + e.token_text + ">";
      return;
    case Expr::kSeq:
      if (e.kids.empty()) {
        out += "\"\"";
        return;
      }
      if (nested && e.kids.size() > 1) out += '(';
      for (size_t i = 0; i < e.kids.size(); ++i) {
        if (i) out += ' ';
        print(e.kids[i], names, out, true);
      }
      if (nested && e.kids.size() > 1) out += ')';
      return;
    case Expr::kAlt:
      if (nested) out += '(';
      for (size_t i = 0; i < e.kids.size(); ++i) {
        if (i) out += " | ";
        print(e.kids[i], names, out, false);
      }
      if (nested) out += ')';
      return;
    case Expr::kRepeat: {
      const Expr& k = e.kids[0];
      const bool atomic = k.kind == Expr::kLiteral || k.kind == Expr::kClass || k.kind == Expr::kRef || k.kind == Expr::kToken;
      if (!atomic) out += '(';
      print(k, names, out, false);
      if (!atomic) out += ')';
      if (e.min == 0 && e.max == -1) out += '*';
      else if (e.min == 1 && e.max == -1) out += '+';
      else if (e.min == 0 && e.max == 1) out += '?';
      else if (e.max == -1) out += fmt::format("{{{},}}", e.min);
      else if (e.min == e.max) out += fmt::format("{{{}}}", e.min);
      else out += fmt::format("{{{},{}}}", e.min, e.max);
      return;
    }
  }
}

}  // namespace

std::string print_expr(const Expr& e, const std::vector<std::string>& names) {
  std::string out;
  print(e, names, out, false);
  return out;
}

std::string print_grammar(const GrammarAst& g) {
  std::string out;
  auto line = [&](size_t i) { out += g.names[i] + " ::= " + print_expr(g.bodies[i], g.names) + "\n"; };
  if (g.root >= 0) line(size_t(g.root));
  for (size_t i = 0; i < g.names.size(); ++i) {
    if (int32_t(i) != g.root) line(i);
  }
  return out;
}

std::string gbnf_literal(std::string_view utf8) {
  std::string out = "\"";
  size_t i = 0;
  while (i < utf8.size()) {
    uint32_t cp = 0;
    const size_t n = decode_utf8(utf8.substr(i), &cp);
    if (n == 0) {  // invalid byte: spell it as a \x escape of that code point (Latin-1), never crash
      cp = uint8_t(utf8[i]);
      i += 1;
    } else {
      i += n;
    }
    put_cp(out, cp, false);
  }
  return out + "\"";
}

}  // namespace tern::constrain
