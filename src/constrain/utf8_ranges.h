// UTF-8 helpers for the grammar engine: the grammar speaks code points, the automata and tokens speak bytes.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace tern::constrain {

constexpr uint32_t kMaxCodePoint = 0x10FFFF;

void append_utf8(std::string& out, uint32_t cp);
// The value of a hex digit (0-9, a-f, A-F), or -1: the \x / \u escapes of GBNF and regex.
inline int hex_digit_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}
// Decodes one well-formed UTF-8 character at the start of s: its length (1..4), or 0 if s starts with an
// invalid / truncated sequence (overlongs and surrogates are invalid).
size_t decode_utf8(std::string_view s, uint32_t* cp);

// A byte sequence pattern: byte i must lie in [first, second] of element i.
using ByteSeq = std::vector<std::pair<uint8_t, uint8_t>>;
// The UTF-8 encodings of code points lo..hi (surrogates excluded) as a small set of byte-range sequences.
void utf8_sequences(uint32_t lo, uint32_t hi, std::vector<ByteSeq>* out);

// Complement of sorted, merged code point ranges within [0, kMaxCodePoint].
std::vector<std::pair<uint32_t, uint32_t>> complement_ranges(std::vector<std::pair<uint32_t, uint32_t>> ranges);
// Sorts and merges overlapping / adjacent ranges.
std::vector<std::pair<uint32_t, uint32_t>> normalize_ranges(std::vector<std::pair<uint32_t, uint32_t>> ranges);

}  // namespace tern::constrain
