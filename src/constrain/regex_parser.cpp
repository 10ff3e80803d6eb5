#include "constrain/regex_parser.h"

#include <fmt/format.h>

#include "constrain/token_constraint.h"
#include "constrain/utf8_ranges.h"

namespace tern::constrain {
namespace {

using Ranges = std::vector<std::pair<uint32_t, uint32_t>>;

const Ranges kDigit = {{'0', '9'}};
const Ranges kWord = {{'0', '9'}, {'A', 'Z'}, {'_', '_'}, {'a', 'z'}};
const Ranges kSpace = {{'\t', '\r'}, {' ', ' '}};

class RegexParser {
 public:
  RegexParser(std::string_view s, const GrammarLimits& limits) : s_(s), limits_(limits) {}

  Result<Expr> run() {
    if (int64_t(s_.size()) > limits_.max_text_bytes) return Status::error("regex: pattern over the size limit");
    if (peek() == '^') ++pos_;
    Expr e;
    TERN_RETURN_IF_ERROR(parse_alt(0, &e));
    if (pos_ < s_.size()) return err(peek() == ')' ? "unbalanced ')'" : "unexpected character");
    return e;
  }

 private:
  char peek(size_t k = 0) const { return pos_ + k < s_.size() ? s_[pos_ + k] : '\0'; }
  bool at_end() const { return pos_ >= s_.size(); }
  Status err(const std::string& what) const {
    return Status::error(fmt::format("regex: {} at offset {} of '{}'", what, pos_, s_.substr(0, 200)));
  }

  Status parse_alt(int depth, Expr* out) {
    if (depth > limits_.max_nesting) return err("groups nested too deeply");
    Expr alt;
    alt.kind = Expr::kAlt;
    while (true) {
      Expr seq;
      TERN_RETURN_IF_ERROR(parse_seq(depth, &seq));
      alt.kids.push_back(std::move(seq));
      if (peek() != '|') break;
      ++pos_;
    }
    *out = alt.kids.size() == 1 ? std::move(alt.kids[0]) : std::move(alt);
    return Status::ok();
  }

  Status parse_seq(int depth, Expr* out) {
    Expr seq;
    seq.kind = Expr::kSeq;
    while (!at_end() && peek() != '|' && peek() != ')') {
      if (peek() == '$' && pos_ + 1 == s_.size()) {
        ++pos_;
        break;
      }
      Expr atom;
      TERN_RETURN_IF_ERROR(parse_atom(depth, &atom));
      while (true) {
        const char c = peek();
        int64_t mn = 0, mx = -1;
        if (c == '*') ++pos_;
        else if (c == '+') ++pos_, mn = 1;
        else if (c == '?') ++pos_, mx = 1;
        else if (c == '{' && brace_is_quantifier()) TERN_RETURN_IF_ERROR(parse_braces(&mn, &mx));
        else break;
        if (peek() == '?') ++pos_;  // lazy: same language
        else if (peek() == '+') return err("possessive quantifiers are not supported");
        Expr rep;
        rep.kind = Expr::kRepeat;
        rep.min = mn, rep.max = mx;
        rep.kids.push_back(std::move(atom));
        atom = std::move(rep);
      }
      seq.kids.push_back(std::move(atom));
    }
    *out = seq.kids.size() == 1 ? std::move(seq.kids[0]) : std::move(seq);
    return Status::ok();
  }

  bool brace_is_quantifier() const {
    size_t p = pos_ + 1;
    if (p >= s_.size() || !(std::isdigit(uint8_t(s_[p])) || s_[p] == ',')) return false;
    while (p < s_.size() && (std::isdigit(uint8_t(s_[p])) || s_[p] == ',')) ++p;
    return p < s_.size() && s_[p] == '}';
  }

  Status parse_braces(int64_t* mn, int64_t* mx) {
    ++pos_;
    auto num = [&](int64_t* v) -> Status {
      int64_t x = 0;
      bool any = false;
      while (std::isdigit(uint8_t(peek()))) {
        x = x * 10 + (peek() - '0');
        ++pos_;
        any = true;
        if (x > limits_.max_repetition) return err(fmt::format("repetition count over the limit of {}", limits_.max_repetition));
      }
      *v = any ? x : -1;
      return Status::ok();
    };
    int64_t a = -1, b = -1;
    TERN_RETURN_IF_ERROR(num(&a));
    if (peek() == '}') {
      ++pos_;
      if (a < 0) return err("empty {}");
      *mn = *mx = a;
      return Status::ok();
    }
    ++pos_;  // ','
    TERN_RETURN_IF_ERROR(num(&b));
    if (peek() != '}') return err("expected '}'");
    ++pos_;
    *mn = a < 0 ? 0 : a;
    *mx = b;
    if (b >= 0 && b < *mn) return err("repetition with max < min");
    return Status::ok();
  }

  // An escape after '\': either a class (ranges, negated) or one code point.
  Status parse_escape(bool in_class, Ranges* ranges, bool* negated, uint32_t* cp, bool* is_class) {
    *is_class = false;
    const char c = peek();
    if (at_end()) return err("trailing backslash");
    ++pos_;
    auto cls = [&](const Ranges& r, bool neg) {
      *ranges = r;
      *negated = neg;
      *is_class = true;
      return Status::ok();
    };
    switch (c) {
      case 'd': return cls(kDigit, false);
      case 'D': return cls(kDigit, true);
      case 'w': return cls(kWord, false);
      case 'W': return cls(kWord, true);
      case 's': return cls(kSpace, false);
      case 'S': return cls(kSpace, true);
      case 'n': *cp = '\n'; return Status::ok();
      case 'r': *cp = '\r'; return Status::ok();
      case 't': *cp = '\t'; return Status::ok();
      case 'f': *cp = '\f'; return Status::ok();
      case 'v': *cp = '\v'; return Status::ok();
      case '0': *cp = 0; return Status::ok();
      case 'b':
        if (in_class) {
          *cp = '\b';
          return Status::ok();
        }
        return err("word boundaries (\\b) are not supported");
      case 'B': return err("\\B is not supported");
      case 'p': case 'P': return err("Unicode property classes (\\p{...}) are not supported");
      case 'x': case 'u': {
        uint32_t v = 0;
        if (c == 'u' && peek() == '{') {
          ++pos_;
          int n = 0;
          while (hex_digit_value(peek()) >= 0 && n < 6) v = v * 16 + uint32_t(hex_digit_value(peek())), ++pos_, ++n;
          if (peek() != '}' || n == 0) return err("bad \\u{...} escape");
          ++pos_;
        } else {
          const int n = c == 'x' ? 2 : 4;
          for (int i = 0; i < n; ++i) {
            if (hex_digit_value(peek()) < 0) return err(fmt::format("expected {} hex digits after \\{}", n, c));
            v = v * 16 + uint32_t(hex_digit_value(peek()));
            ++pos_;
          }
        }
        if (v > kMaxCodePoint) return err("code point past U+10FFFF");
        *cp = v;
        return Status::ok();
      }
      default:
        if (c >= '1' && c <= '9') return err("backreferences are not supported");
        if (std::isalnum(uint8_t(c))) return err(fmt::format("unknown escape '\\{}'", c));
        *cp = uint8_t(c);
        return Status::ok();
    }
  }

  Status parse_cp(uint32_t* cp) {
    const size_t n = decode_utf8(s_.substr(pos_), cp);
    if (n == 0) return err("invalid UTF-8");
    pos_ += n;
    return Status::ok();
  }

  Status parse_class(Expr* out) {
    ++pos_;  // '['
    out->kind = Expr::kClass;
    bool negated = false;
    if (peek() == '^') negated = true, ++pos_;
    Ranges ranges;
    bool first = true;
    while (first || peek() != ']') {
      if (at_end()) return err("unterminated character class");
      first = false;
      uint32_t lo = 0;
      if (peek() == '\\') {
        ++pos_;
        Ranges r;
        bool neg = false, is_class = false;
        TERN_RETURN_IF_ERROR(parse_escape(true, &r, &neg, &lo, &is_class));
        if (is_class) {
          if (neg) r = complement_ranges(r);
          ranges.insert(ranges.end(), r.begin(), r.end());
          continue;
        }
      } else {
        TERN_RETURN_IF_ERROR(parse_cp(&lo));
      }
      uint32_t hi = lo;
      if (peek() == '-' && peek(1) != ']' && peek(1) != '\0') {
        ++pos_;
        if (peek() == '\\') {
          ++pos_;
          Ranges r;
          bool neg = false, is_class = false;
          TERN_RETURN_IF_ERROR(parse_escape(true, &r, &neg, &hi, &is_class));
          if (is_class) return err("a class escape cannot end a range");
        } else {
          TERN_RETURN_IF_ERROR(parse_cp(&hi));
        }
        if (hi < lo) return err("character range with end before start");
      }
      ranges.emplace_back(lo, hi);
    }
    ++pos_;
    out->ranges = normalize_ranges(std::move(ranges));
    out->negated = negated;
    return Status::ok();
  }

  Status parse_atom(int depth, Expr* out) {
    const char c = peek();
    switch (c) {
      case '(': {
        ++pos_;
        if (peek() == '?') {
          const char k = peek(1);
          if (k == ':') {
            pos_ += 2;
          } else if (k == '<' && peek(2) != '=' && peek(2) != '!') {
            while (!at_end() && peek() != '>') ++pos_;
            ++pos_;
          } else if (k == 'P' && peek(2) == '<') {
            while (!at_end() && peek() != '>') ++pos_;
            ++pos_;
          } else if (k == '=' || k == '!' || k == '<') {
            return err("lookaround assertions are not supported");
          } else {
            return err("unsupported group syntax '(?'");
          }
        }
        TERN_RETURN_IF_ERROR(parse_alt(depth + 1, out));
        if (peek() != ')') return err("missing ')'");
        ++pos_;
        return Status::ok();
      }
      case '[': return parse_class(out);
      case '.':
        ++pos_;
        out->kind = Expr::kClass;
        out->negated = true;
        out->ranges = {{'\n', '\n'}, {'\r', '\r'}};
        return Status::ok();
      case '^': return err("'^' is only supported at the start of the pattern");
      case '$': return err("'$' is only supported at the end of the pattern");
      case '*': case '+': case '?': return err("quantifier without anything to repeat");
      case '\\': {
        ++pos_;
        Ranges r;
        bool neg = false, is_class = false;
        uint32_t cp = 0;
        TERN_RETURN_IF_ERROR(parse_escape(false, &r, &neg, &cp, &is_class));
        if (is_class) {
          out->kind = Expr::kClass;
          out->ranges = normalize_ranges(r);
          out->negated = neg;
        } else {
          out->kind = Expr::kLiteral;
          out->cps = {cp};
        }
        return Status::ok();
      }
      default: {
        uint32_t cp = 0;
        TERN_RETURN_IF_ERROR(parse_cp(&cp));
        out->kind = Expr::kLiteral;
        out->cps = {cp};
        return Status::ok();
      }
    }
  }

  std::string_view s_;
  GrammarLimits limits_;
  size_t pos_ = 0;
};

// A code point as it appears inside a JSON string.
void json_escaped(uint32_t cp, std::vector<uint32_t>* out) {
  auto lit = [&](const char* s) {
    for (; *s; ++s) out->push_back(uint8_t(*s));
  };
  switch (cp) {
    case '"': lit("\\\""); return;
    case '\\': lit("\\\\"); return;
    case '\n': lit("\\n"); return;
    case '\r': lit("\\r"); return;
    case '\t': lit("\\t"); return;
    case '\b': lit("\\b"); return;
    case '\f': lit("\\f"); return;
    default:
      if (cp < 0x20) lit(fmt::format("\\u{:04x}", cp).c_str());
      else out->push_back(cp);
  }
}

// Rewrites an expression over decoded characters into one over JSON string text.
void to_json_string(Expr* e) {
  switch (e->kind) {
    case Expr::kLiteral: {
      std::vector<uint32_t> cps;
      for (uint32_t cp : e->cps) json_escaped(cp, &cps);
      e->cps = std::move(cps);
      return;
    }
    case Expr::kClass: {
      Ranges r = e->negated ? complement_ranges(e->ranges) : e->ranges;
      r = complement_ranges(r);  // forbidden = complement(allowed) + specials; allowed = complement of that
      r.push_back({0, 0x1F});
      r.push_back({'"', '"'});
      r.push_back({'\\', '\\'});
      e->ranges = complement_ranges(r);
      e->negated = false;
      return;
    }
    default:
      for (Expr& k : e->kids) to_json_string(&k);
  }
}

}  // namespace

Result<Expr> parse_regex(std::string_view pattern, bool json_string, const GrammarLimits& limits) {
  TERN_ASSIGN_OR_RETURN(Expr e, RegexParser(pattern, limits).run());
  if (json_string) to_json_string(&e);
  return e;
}

}  // namespace tern::constrain

namespace tern {

Result<std::string> regex_to_gbnf(std::string_view pattern, const GrammarLimits& limits) {
  TERN_ASSIGN_OR_RETURN(constrain::Expr e, constrain::parse_regex(pattern, false, limits));
  return "root ::= " + constrain::print_expr(e, {}) + "\n";
}

}  // namespace tern
