#include "text/chat_template/lexer.h"

#include <cctype>

namespace tern::jinja {
namespace {

bool is_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'; }

std::string err(int line, const std::string& what) { return "line " + std::to_string(line) + ": " + what; }

bool is_tag_lead(char c) { return c == '#' || c == '%' || c == '-'; }

// transformers' environment: trim_blocks and lstrip_blocks on, keep_trailing_newline off;
// {% generation %} markers are dropped (HF's own renderer does the same). Three passes, each the regex
// replacement it is written after (std::regex recursed per character and overflowed the stack on a long run of
// spaces, so they are spelled out):
std::string preprocess(std::string s) {
  if (!s.empty() && s.back() == '\n') s.pop_back();
  // (^|\n)[ \t]*(\{[#%-]) -> $1$2: blanks that start a line before a tag go.
  std::string a;
  a.reserve(s.size());
  for (size_t k = 0; k < s.size();) {
    if (k == 0 || s[k - 1] == '\n') {
      size_t e = k;
      while (e < s.size() && (s[e] == ' ' || s[e] == '\t')) ++e;
      if (e + 1 < s.size() && s[e] == '{' && is_tag_lead(s[e + 1])) k = e;
    }
    const size_t next = s.find('\n', k);
    const size_t end = next == std::string::npos ? s.size() : next + 1;
    a.append(s, k, end - k);
    k = end;
  }
  // ([#%-]\}) \n -> $1: the newline after a tag goes.
  std::string b;
  b.reserve(a.size());
  for (size_t k = 0; k < a.size(); ++k) {
    if (a[k] == '\n' && k >= 2 && a[k - 1] == '}' && is_tag_lead(a[k - 2])) continue;
    b += a[k];
  }
  // \{%\s*(end)?generation\s*%\} -> "".
  auto space = [](char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'; };
  std::string out;
  out.reserve(b.size());
  for (size_t k = 0; k < b.size();) {
    if (b.compare(k, 2, "{%") == 0) {
      size_t e = k + 2;
      while (e < b.size() && space(b[e])) ++e;
      if (b.compare(e, 3, "end") == 0 && b.compare(e + 3, 10, "generation") == 0) e += 3;
      if (b.compare(e, 10, "generation") == 0) {
        e += 10;
        while (e < b.size() && space(b[e])) ++e;
        if (b.compare(e, 2, "%}") == 0) {
          k = e + 2;
          continue;
        }
      }
    }
    out += b[k++];
  }
  return out;
}

int count_lines(const std::string& s, size_t from, size_t to) {
  int n = 0;
  for (size_t k = from; k < to && k < s.size(); ++k) n += s[k] == '\n';
  return n;
}

// Expression tokens inside {{ }} or {% %}, from s[pos] up to the closing delimiter.
Status lex_inner(const std::string& s, size_t& pos, int& line, const std::string& close,
                 std::vector<Token>& out) {
  static const char* ops[] = {"//", "**", "==", "!=", "<=", ">=", "+", "-", "*", "/", "%", "~", "<", ">",
                              "=", "(", ")", "[", "]", "{", "}", ",", ".", ":", "|"};
  while (true) {
    while (pos < s.size() && is_space(s[pos])) line += s[pos++] == '\n';
    if (pos >= s.size()) return Status::error(err(line, "unclosed tag, expected '" + close + "'"));
    if (s[pos] == '-' && s.compare(pos + 1, close.size(), close) == 0) {
      pos += 1 + close.size();
      out.push_back({Token::Kind::Op, "-" + close, line});
      return Status::ok();
    }
    if (s.compare(pos, close.size(), close) == 0) {
      pos += close.size();
      out.push_back({Token::Kind::Op, close, line});
      return Status::ok();
    }
    char c = s[pos];
    if (std::isalpha(static_cast<unsigned char>(c)) || c == '_') {
      size_t b = pos;
      while (pos < s.size() && (std::isalnum(static_cast<unsigned char>(s[pos])) || s[pos] == '_')) ++pos;
      out.push_back({Token::Kind::Name, s.substr(b, pos - b), line});
    } else if (std::isdigit(static_cast<unsigned char>(c))) {
      size_t b = pos;
      while (pos < s.size() && (std::isdigit(static_cast<unsigned char>(s[pos])) || s[pos] == '_')) ++pos;
      bool is_float = false;
      if (pos + 1 < s.size() && s[pos] == '.' && std::isdigit(static_cast<unsigned char>(s[pos + 1]))) {
        is_float = true;
        ++pos;
        while (pos < s.size() && std::isdigit(static_cast<unsigned char>(s[pos]))) ++pos;
      }
      std::string num;
      for (size_t k = b; k < pos; ++k)
        if (s[k] != '_') num += s[k];
      out.push_back({is_float ? Token::Kind::Float : Token::Kind::Int, num, line});
    } else if (c == '\'' || c == '"') {
      std::string v;
      int start_line = line;
      ++pos;
      while (pos < s.size() && s[pos] != c) {
        char d = s[pos++];
        if (d == '\n') ++line;
        if (d == '\\' && pos < s.size()) {
          char e = s[pos++];
          switch (e) {
            case 'n': v += '\n'; break;
            case 't': v += '\t'; break;
            case 'r': v += '\r'; break;
            case 'b': v += '\b'; break;
            case 'f': v += '\f'; break;
            case '\\': v += '\\'; break;
            case '\'': v += '\''; break;
            case '"': v += '"'; break;
            default: v += '\\'; v += e; break;
          }
        } else {
          v += d;
        }
      }
      if (pos >= s.size()) return Status::error(err(start_line, "unterminated string literal"));
      ++pos;
      out.push_back({Token::Kind::String, v, start_line});
    } else {
      bool matched = false;
      for (const char* op : ops) {
        size_t n = std::char_traits<char>::length(op);
        if (s.compare(pos, n, op) == 0) {
          out.push_back({Token::Kind::Op, op, line});
          pos += n;
          matched = true;
          break;
        }
      }
      if (!matched) return Status::error(err(line, std::string("unexpected character '") + c + "'"));
    }
  }
}

}  // namespace

Result<std::vector<Token>> tokenize(const std::string& source) {
  std::string s = preprocess(source);
  std::vector<Token> out;
  size_t pos = 0;
  int line = 1;
  bool strip_next = false;  // the previous tag ended with '-'
  while (pos < s.size()) {
    size_t open = pos;
    while (open < s.size() && !(s[open] == '{' && open + 1 < s.size() &&
                                (s[open + 1] == '{' || s[open + 1] == '%' || s[open + 1] == '#')))
      ++open;
    std::string text = s.substr(pos, open - pos);
    int text_line = line;
    line += count_lines(s, pos, open);
    bool strip_before = open + 2 < s.size() && s[open + 2] == '-';
    if (strip_next) {
      size_t b = 0;
      while (b < text.size() && is_space(text[b])) ++b;
      text = text.substr(b);
    }
    if (strip_before) {
      while (!text.empty() && is_space(text.back())) text.pop_back();
    }
    if (!text.empty()) out.push_back({Token::Kind::Text, text, text_line});
    if (open >= s.size()) break;
    char kind = s[open + 1];
    pos = open + 2 + (strip_before ? 1 : 0);
    if (kind == '#') {
      size_t close = s.find("#}", pos);
      if (close == std::string::npos) return Status::error(err(line, "unclosed comment"));
      strip_next = close > pos && s[close - 1] == '-';
      line += count_lines(s, pos, close);
      pos = close + 2;
      continue;
    }
    if (kind == '%' && pos < s.size() && s[pos] == '+') ++pos;  // {%+ : lstrip already applied by regex
    out.push_back({kind == '{' ? Token::Kind::ExprOpen : Token::Kind::StmtOpen, "", line});
    TERN_RETURN_IF_ERROR(lex_inner(s, pos, line, kind == '{' ? "}}" : "%}", out));
    Token close = out.back();
    out.pop_back();
    strip_next = close.text[0] == '-';
    out.push_back({kind == '{' ? Token::Kind::ExprClose : Token::Kind::StmtClose, "", close.line});
  }
  out.push_back({Token::Kind::End, "", line});
  return out;
}

}  // namespace tern::jinja
