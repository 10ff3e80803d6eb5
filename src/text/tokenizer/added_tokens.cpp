#include "text/tokenizer/added_tokens.h"

#include <unicode/uchar.h>

#include <algorithm>

#include "text/tokenizer/utf8.h"

namespace tern::tok {

namespace {

// Code point before `pos` (pos > 0, text valid there); sets *start to its first byte.
uint32_t cp_before(std::string_view text, size_t pos, size_t* start) {
  size_t s = pos - 1;
  while (s > 0 && (static_cast<uint8_t>(text[s]) & 0xC0) == 0x80) --s;
  *start = s;
  size_t len = 0;
  const auto* p = reinterpret_cast<const uint8_t*>(text.data());
  if (utf8_step(p + s, pos - s, &len) != Utf8Step::kComplete || s + len != pos) return 0xFFFD;
  size_t i = s;
  return utf8_decode_at(text, &i);
}

// Code point at `pos`; sets *len to its byte length (1 for an invalid byte, reported as U+FFFD).
uint32_t cp_at(std::string_view text, size_t pos, size_t* len) {
  const auto* p = reinterpret_cast<const uint8_t*>(text.data());
  if (utf8_step(p + pos, text.size() - pos, len) != Utf8Step::kComplete) {
    *len = 1;
    return 0xFFFD;
  }
  size_t i = pos;
  return utf8_decode_at(text, &i);
}

}  // namespace

bool is_word_char(uint32_t cp) {
  const UChar32 c = static_cast<UChar32>(cp);
  if (u_hasBinaryProperty(c, UCHAR_ALPHABETIC) || u_hasBinaryProperty(c, UCHAR_JOIN_CONTROL)) return true;
  switch (u_charType(c)) {
    case U_NON_SPACING_MARK:
    case U_ENCLOSING_MARK:
    case U_COMBINING_SPACING_MARK:
    case U_DECIMAL_DIGIT_NUMBER:
    case U_CONNECTOR_PUNCTUATION:
      return true;
    default:
      return false;
  }
}

Result<AddedTokens> AddedTokens::build(const std::vector<AddedTokenSpec>& tokens) {
  AddedTokens a;
  a.tokens_ = tokens;
  for (size_t i = 0; i < a.tokens_.size(); ++i) {
    const auto& t = a.tokens_[i];
    if (t.content.empty()) continue;  // can never match
    a.by_first_byte_[static_cast<uint8_t>(t.content[0])].push_back(static_cast<int32_t>(i));
  }
  for (auto& bucket : a.by_first_byte_) {
    std::stable_sort(bucket.begin(), bucket.end(), [&](int32_t x, int32_t y) {
      return a.tokens_[x].content.size() > a.tokens_[y].content.size();
    });
  }
  return a;
}

void AddedTokens::split(std::string_view text, std::vector<Segment>& out) const {
  out.clear();
  size_t plain = 0;  // start of the pending ordinary-text segment
  size_t i = 0;
  while (i < text.size()) {
    const auto& bucket = by_first_byte_[static_cast<uint8_t>(text[i])];
    int32_t hit = -1;
    for (int32_t k : bucket) {
      const std::string& c = tokens_[k].content;
      if (text.size() - i < c.size() || text.compare(i, c.size(), c) != 0) continue;
      hit = k;
      break;
    }
    if (hit < 0) {
      ++i;
      continue;
    }
    const AddedTokenSpec& t = tokens_[hit];
    size_t begin = i, end = i + t.content.size();
    i = end;
    if (t.single_word) {
      size_t len = 0;
      if ((begin > 0 && is_word_char(cp_before(text, begin, &len))) ||
          (end < text.size() && is_word_char(cp_at(text, end, &len))))
        continue;  // inside a word: the text it covered stays ordinary text
    }
    if (t.lstrip) {
      while (begin > plain) {
        size_t s = 0;
        if (!is_unicode_whitespace(cp_before(text, begin, &s))) break;
        begin = s;
      }
    }
    if (t.rstrip) {
      while (end < text.size()) {
        size_t len = 0;
        if (!is_unicode_whitespace(cp_at(text, end, &len))) break;
        end += len;
      }
    }
    if (begin > plain) out.push_back({plain, begin, -1});
    out.push_back({begin, end, t.id});
    plain = i = end;
  }
  if (plain < text.size()) out.push_back({plain, text.size(), -1});
}

}  // namespace tern::tok
