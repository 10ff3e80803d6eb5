#include "constrain/gbnf_parser.h"

#include <fmt/format.h>

#include <cstdint>
#include <string>
#include <unordered_map>

#include "constrain/utf8_ranges.h"

namespace tern::constrain {
namespace {

bool is_name_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '_';
}

class Parser {
 public:
  Parser(std::string_view text, const GrammarLimits& limits) : s_(text), limits_(limits) {}

  Result<GrammarAst> run() {
    if (int64_t(s_.size()) > limits_.max_text_bytes)
      return Status::error(fmt::format("grammar: text is {} bytes, over the limit of {}", s_.size(), limits_.max_text_bytes));
    std::vector<bool> defined;
    while (true) {
      skip_ws();
      if (at_end()) break;
      const size_t start = pos_;
      std::string name = parse_name();
      if (name.empty()) return err("expected a rule name");
      skip_ws();
      if (s_.substr(pos_, 3) != "::=") return err(fmt::format("expected '::=' after rule name '{}'", name));
      pos_ += 3;
      const int32_t id = rule_id(name);
      defined.resize(ast_.names.size(), false);
      if (defined[size_t(id)]) {
        pos_ = start;
        return err(fmt::format("rule '{}' is defined twice", name));
      }
      defined[size_t(id)] = true;
      Expr body;
      TERN_RETURN_IF_ERROR(parse_alt(0, &body));
      ast_.bodies[size_t(id)] = std::move(body);
    }
    defined.resize(ast_.names.size(), false);
    for (size_t i = 0; i < ast_.names.size(); ++i) {
      if (!defined[i]) return Status::error(fmt::format("grammar: undefined rule '{}'", ast_.names[i]));
    }
    auto it = ids_.find("root");
    if (it == ids_.end()) return Status::error("grammar: no 'root' rule (the start rule must be named root)");
    ast_.root = it->second;
    return std::move(ast_);
  }

 private:
  bool at_end() const { return pos_ >= s_.size(); }
  char peek(size_t k = 0) const { return pos_ + k < s_.size() ? s_[pos_ + k] : '\0'; }

  Status err(const std::string& what) const {
    int line = 1, col = 1;
    for (size_t i = 0; i < pos_ && i < s_.size(); ++i) {
      if (s_[i] == '\n') ++line, col = 1;
      else ++col;
    }
    return Status::error(fmt::format("grammar: {} at line {}:{}", what, line, col));
  }

  void skip_ws() {
    while (!at_end()) {
      const char c = peek();
      if (c == ' ' || c == '\t' || c == '\r' || c == '\n') {
        ++pos_;
      } else if (c == '#') {
        while (!at_end() && peek() != '\n') ++pos_;
      } else {
        break;
      }
    }
  }

  std::string parse_name() {
    const size_t b = pos_;
    while (!at_end() && is_name_char(peek())) ++pos_;
    return std::string(s_.substr(b, pos_ - b));
  }

  // At a name followed by `::=`: the next rule starts here.
  bool at_rule_start() const {
    size_t p = pos_;
    while (p < s_.size() && is_name_char(s_[p])) ++p;
    if (p == pos_) return false;
    while (p < s_.size() && (s_[p] == ' ' || s_[p] == '\t')) ++p;
    return s_.substr(p, 3) == "::=";
  }

  int32_t rule_id(const std::string& name) {
    auto [it, fresh] = ids_.emplace(name, int32_t(ast_.names.size()));
    if (fresh) {
      ast_.names.push_back(name);
      ast_.bodies.emplace_back();
    }
    return it->second;
  }

  Status parse_alt(int depth, Expr* out) {
    if (depth > limits_.max_nesting) return err(fmt::format("nesting deeper than {}", limits_.max_nesting));
    Expr alt;
    alt.kind = Expr::kAlt;
    while (true) {
      Expr seq;
      TERN_RETURN_IF_ERROR(parse_seq(depth, &seq));
      alt.kids.push_back(std::move(seq));
      skip_ws();
      if (peek() != '|') break;
      ++pos_;
    }
    *out = alt.kids.size() == 1 ? std::move(alt.kids[0]) : std::move(alt);
    return Status::ok();
  }

  Status parse_seq(int depth, Expr* out) {
    Expr seq;
    seq.kind = Expr::kSeq;
    while (true) {
      skip_ws();
      if (at_end() || peek() == '|' || peek() == ')') break;
      if (at_rule_start()) break;
      Expr term;
      TERN_RETURN_IF_ERROR(parse_term(depth, &term));
      while (true) {
        skip_ws();
        const char c = peek();
        int64_t mn = 0, mx = -1;
        if (c == '*') ++pos_;
        else if (c == '+') ++pos_, mn = 1;
        else if (c == '?') ++pos_, mx = 1;
        else if (c == '{') TERN_RETURN_IF_ERROR(parse_braces(&mn, &mx));
        else break;
        Expr rep;
        rep.kind = Expr::kRepeat;
        rep.min = mn;
        rep.max = mx;
        rep.kids.push_back(std::move(term));
        term = std::move(rep);
      }
      seq.kids.push_back(std::move(term));
    }
    *out = seq.kids.size() == 1 ? std::move(seq.kids[0]) : std::move(seq);
    return Status::ok();
  }

  Status parse_int(int64_t* v) {
    skip_ws();
    if (!(peek() >= '0' && peek() <= '9')) return err("expected a number in {m,n}");
    int64_t x = 0;
    while (peek() >= '0' && peek() <= '9') {
      x = x * 10 + (peek() - '0');
      ++pos_;
      if (x > limits_.max_repetition) return err(fmt::format("repetition count over the limit of {}", limits_.max_repetition));
    }
    *v = x;
    return Status::ok();
  }

  Status parse_braces(int64_t* mn, int64_t* mx) {
    ++pos_;  // '{'
    skip_ws();
    if (peek() == ',') {
      *mn = 0;
    } else {
      TERN_RETURN_IF_ERROR(parse_int(mn));
    }
    skip_ws();
    if (peek() == '}') {
      ++pos_;
      *mx = *mn;
      return Status::ok();
    }
    if (peek() != ',') return err("expected ',' or '}' in {m,n}");
    ++pos_;
    skip_ws();
    if (peek() == '}') {
      ++pos_;
      *mx = -1;
      return Status::ok();
    }
    TERN_RETURN_IF_ERROR(parse_int(mx));
    skip_ws();
    if (peek() != '}') return err("expected '}' in {m,n}");
    ++pos_;
    if (*mx < *mn) return err(fmt::format("repetition {{{},{}}} has max < min", *mn, *mx));
    return Status::ok();
  }

  // One character of a literal or class (after any backslash escape), as a code point.
  Status parse_char(uint32_t* cp) {
    if (at_end()) return err("unexpected end of text");
    if (peek() == '\\') {
      ++pos_;
      const char c = peek();
      ++pos_;
      int digits = 0;
      switch (c) {
        case 'n': *cp = '\n'; return Status::ok();
        case 'r': *cp = '\r'; return Status::ok();
        case 't': *cp = '\t'; return Status::ok();
        case 'x': digits = 2; break;
        case 'u': digits = 4; break;
        case 'U': digits = 8; break;
        default:
          if ((c >= '!' && c <= '/') || (c >= ':' && c <= '@') || (c >= '[' && c <= '`') || (c >= '{' && c <= '~')) {
            *cp = uint8_t(c);
            return Status::ok();
          }
          --pos_;
          return err(fmt::format("unknown escape '\\{}'", c == '\0' ? ' ' : c));
      }
      uint32_t v = 0;
      for (int i = 0; i < digits; ++i) {
        const int h = hex_digit_value(peek());
        if (h < 0) return err(fmt::format("expected {} hex digits after \\{}", digits, c));
        v = v * 16 + uint32_t(h);
        ++pos_;
      }
      if (v > kMaxCodePoint) return err("code point past U+10FFFF");
      *cp = v;
      return Status::ok();
    }
    const size_t n = decode_utf8(s_.substr(pos_), cp);
    if (n == 0) return err("invalid UTF-8");
    pos_ += n;
    return Status::ok();
  }

  Status parse_term(int depth, Expr* out) {
    const char c = peek();
    if (c == '"') {
      ++pos_;
      out->kind = Expr::kLiteral;
      while (peek() != '"') {
        if (at_end() || peek() == '\n') return err("unterminated string literal");
        uint32_t cp = 0;
        TERN_RETURN_IF_ERROR(parse_char(&cp));
        out->cps.push_back(cp);
      }
      ++pos_;
      if (out->cps.empty()) *out = Expr{};  // "" is the empty sequence
      return Status::ok();
    }
    if (c == '[') {
      ++pos_;
      out->kind = Expr::kClass;
      if (peek() == '^') {
        out->negated = true;
        ++pos_;
      }
      while (peek() != ']') {
        if (at_end()) return err("unterminated character class");
        uint32_t lo = 0, hi = 0;
        TERN_RETURN_IF_ERROR(parse_char(&lo));
        hi = lo;
        if (peek() == '-' && peek(1) != ']' && peek(1) != '\0') {
          ++pos_;
          TERN_RETURN_IF_ERROR(parse_char(&hi));
          if (hi < lo) return err("character range with end before start");
        }
        out->ranges.emplace_back(lo, hi);
      }
      ++pos_;
      out->ranges = normalize_ranges(std::move(out->ranges));
      return Status::ok();
    }
    if (c == '.') {
      ++pos_;
      out->kind = Expr::kClass;
      out->negated = true;
      return Status::ok();
    }
    if (c == '(') {
      ++pos_;
      TERN_RETURN_IF_ERROR(parse_alt(depth + 1, out));
      skip_ws();
      if (peek() != ')') return err("expected ')'");
      ++pos_;
      return Status::ok();
    }
    if (c == '<') return parse_token(out);
    if (c == '!' && peek(1) == '<')
      return err("negated token terminals (!<...>: any one token but that one) are not supported");
    if (is_name_char(c)) {
      out->kind = Expr::kRef;
      out->rule = rule_id(parse_name());
      return Status::ok();
    }
    return err(fmt::format("unexpected character '{}'", c));
  }

  // A special token: `<[id]>`, `<[TOOL_CALLS]>` (a bracketed token text, tern's extension: llama.cpp's `<[`
  // takes only digits) or `<think>` (llama.cpp: the whole `<...>` is the token's text). The text runs to the first
  // `>`; the builder resolves it against the vocabulary.
  Status parse_token(Expr* out) {
    const size_t gt = s_.find('>', pos_);
    const size_t nl = s_.find('\n', pos_);
    if (gt == std::string_view::npos || (nl != std::string_view::npos && nl < gt)) return err("unterminated token terminal '<...>'");
    const std::string_view inner = s_.substr(pos_ + 1, gt - pos_ - 1);
    if (inner.empty()) return err("empty token terminal '<>'");
    out->kind = Expr::kToken;
    if (inner.size() > 2 && inner.front() == '[' && inner.back() == ']') {
      const std::string_view body = inner.substr(1, inner.size() - 2);
      if (body.find_first_not_of("0123456789") == std::string_view::npos) {
        if (body.size() > 10) return err("token id out of range");
        out->token = std::stoll(std::string(body));
        if (out->token > INT32_MAX) return err("token id out of range");
      } else {
        out->token_text = std::string(inner);
      }
    } else if (inner.front() == '[') {
      return err("expected '<[id]>' (a token id) or '<[TEXT]>' (a special token's text)");
    } else {
      out->token_text = "<" + std::string(inner) + ">";
    }
    pos_ = gt + 1;
    return Status::ok();
  }

  std::string_view s_;
  GrammarLimits limits_;
  size_t pos_ = 0;
  GrammarAst ast_;
  std::unordered_map<std::string, int32_t> ids_;
};

}  // namespace

Result<GrammarAst> parse_gbnf(std::string_view text, const GrammarLimits& limits) { return Parser(text, limits).run(); }

}  // namespace tern::constrain
