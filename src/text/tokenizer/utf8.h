// UTF-8 helpers shared by the tokenizer stages: validation in the Unicode "maximal subpart" sense (the same
// replacement policy as Rust's String::from_utf8_lossy, which Hugging Face decode uses), and the GPT-2 byte-level
// alphabet (each of the 256 byte values <-> one printable code point).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace tern::tok {

enum class Utf8Step { kComplete, kIncomplete, kInvalid };

// Classifies the sequence starting at p[0] (n >= 1 bytes available):
//   kComplete:   a whole valid character of *len bytes;
//   kIncomplete: the n bytes are a valid but unfinished prefix of a character (*len = n);
//   kInvalid:    the first *len bytes are a maximal invalid subpart (replace them with one U+FFFD).
Utf8Step utf8_step(const uint8_t* p, size_t n, size_t* len);

// Length of the longest prefix of `s` that is valid UTF-8 made of whole characters.
size_t utf8_valid_prefix(std::string_view s);
inline bool utf8_is_valid(std::string_view s) { return utf8_valid_prefix(s) == s.size(); }

// Appends `bytes` to out, replacing each maximal invalid subpart (and a truncated tail) by U+FFFD.
void append_utf8_lossy(std::string_view bytes, std::string& out);
std::string utf8_lossy(std::string_view bytes);

// Decodes the valid character at s[i] (caller checked validity); returns the code point, advances *i.
uint32_t utf8_decode_at(std::string_view s, size_t* i);
void append_utf8(uint32_t cp, std::string& out);

// Unicode White_Space (what Rust's char::is_whitespace tests; used for added-token lstrip/rstrip).
bool is_unicode_whitespace(uint32_t cp);

// GPT-2 byte-level alphabet.
uint32_t byte_to_codepoint(uint8_t b);
// Returns false when some character of `token` is outside the 256-character alphabet.
bool byte_level_decode(std::string_view token, std::string& out_bytes);
std::string byte_level_encode(std::string_view bytes);

}  // namespace tern::tok
