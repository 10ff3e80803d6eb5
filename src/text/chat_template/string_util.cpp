#include "text/chat_template/string_util.h"

#include <algorithm>
#include <cctype>
#include <cstring>

#include "text/chat_template/budget.h"

namespace tern::jinja {

size_t find_bytes(const std::string& s, const std::string& needle, size_t from) {
  if (from > s.size()) return std::string::npos;
  if (needle.empty()) return from;
  const void* at = memmem(s.data() + from, s.size() - from, needle.data(), needle.size());
  return at ? size_t(static_cast<const char*>(at) - s.data()) : std::string::npos;
}

static bool is_ws(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'; }

std::string strip_chars(const std::string& s, const std::string& chars, bool left, bool right) {
  bool strip[256] = {};  // a table: chars may be as long as s
  for (unsigned char c : chars) strip[c] = true;
  size_t b = 0, e = s.size();
  if (left)
    while (b < e && strip[static_cast<unsigned char>(s[b])]) ++b;
  if (right)
    while (e > b && strip[static_cast<unsigned char>(s[e - 1])]) --e;
  return s.substr(b, e - b);
}

std::string to_upper(std::string s) {
  for (char& c : s) c = char(std::toupper(static_cast<unsigned char>(c)));
  return s;
}

std::string to_lower(std::string s) {
  for (char& c : s) c = char(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

std::string to_title(const std::string& s) {
  std::string out = s;
  bool start = true;
  for (char& c : out) {
    unsigned char u = static_cast<unsigned char>(c);
    if (std::isalpha(u)) {
      c = char(start ? std::toupper(u) : std::tolower(u));
      start = false;
    } else {
      start = !std::isalnum(u) && u < 0x80;
    }
  }
  return out;
}

std::string capitalize(const std::string& s) {
  std::string out = to_lower(s);
  if (!out.empty()) out[0] = char(std::toupper(static_cast<unsigned char>(out[0])));
  return out;
}

std::vector<std::string> split_str(const std::string& s, const std::string* sep, int64_t maxsplit, Budget& b) {
  b.bytes(s.size());
  std::vector<std::string> out;
  auto add = [&](std::string piece) {
    b.list_size(out.size() + 1);
    b.built(sizeof(Value) + piece.size());
    out.push_back(std::move(piece));
  };
  if (sep && !sep->empty()) {
    size_t from = 0;
    while (maxsplit < 0 || int64_t(out.size()) < maxsplit) {
      size_t at = find_bytes(s, *sep, from);
      if (at == std::string::npos) break;
      add(s.substr(from, at - from));
      from = at + sep->size();
    }
    add(s.substr(from));
    return out;
  }
  size_t k = 0;
  while (k < s.size()) {
    while (k < s.size() && is_ws(s[k])) ++k;
    if (k >= s.size()) break;
    if (maxsplit >= 0 && int64_t(out.size()) >= maxsplit) {
      size_t e = s.size();
      while (e > k && is_ws(s[e - 1])) --e;
      add(s.substr(k, e - k));
      break;
    }
    size_t begin = k;
    while (k < s.size() && !is_ws(s[k])) ++k;
    add(s.substr(begin, k - begin));
  }
  return out;
}

std::string replace_all(const std::string& s, const std::string& from, const std::string& to, int64_t count,
                        Budget& b) {
  b.bytes(s.size());
  std::string out;
  if (from.empty()) {
    // Python: `to` goes before every character and at the end ("ab".replace("", "-") == "-a-b-").
    int64_t n = 0;
    for (size_t k = 0; k <= s.size();) {
      if (count < 0 || n < count) {
        b.string_size(out.size() + to.size());
        out += to;
        ++n;
      }
      if (k == s.size()) break;
      const unsigned char c = s[k];
      const size_t len = std::min(s.size() - k, size_t(c < 0x80 ? 1 : c < 0xE0 ? 2 : c < 0xF0 ? 3 : 4));
      b.string_size(out.size() + len);
      out.append(s, k, len);
      k += len;
    }
    b.built(out.size());
    return out;
  }
  size_t pos = 0;
  int64_t n = 0;
  while (count < 0 || n < count) {
    size_t at = find_bytes(s, from, pos);
    if (at == std::string::npos) break;
    b.string_size(out.size() + (at - pos) + to.size());
    out.append(s, pos, at - pos);
    out += to;
    pos = at + from.size();
    ++n;
  }
  b.string_size(out.size() + (s.size() - pos));
  out.append(s, pos, std::string::npos);
  b.built(out.size());
  return out;
}

}  // namespace tern::jinja
