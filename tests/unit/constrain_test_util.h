// Shared by the constrain tests: small byte vocabularies and helpers that drive a TokenConstraint.
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <set>
#include <string>
#include <vector>

#include "constrain/compiled_grammar.h"
#include "constrain/token_constraint.h"

namespace tern::test {

// A node mask as a bitset of `words` 32-bit words (its shared part included).
inline std::vector<uint32_t> mask_bits(const constrain::NodeMask& m, int64_t words) {
  std::vector<uint32_t> out(size_t(words), 0);
  m.or_into(out.data(), words);
  return out;
}

// A node mask's pop points, sorted (the walk's order is not part of the mask).
inline std::vector<int32_t> sorted_pop_points(const constrain::NodeMask& m) {
  std::vector<int32_t> out;
  m.for_each_pop_point([&](int32_t p) { out.push_back(p); });
  std::sort(out.begin(), out.end());
  return out;
}

// All 256 single bytes, then `extra` multi-byte tokens (ids 256..), then one special token (spells nothing).
inline TokenVocabulary byte_vocab(const std::vector<std::string>& extra = {}) {
  std::vector<std::string> bytes;
  for (int b = 0; b < 256; ++b) bytes.push_back(std::string(1, char(b)));
  for (const auto& e : extra) bytes.push_back(e);
  bytes.push_back("");
  return *TokenVocabulary::from_bytes(bytes);
}

inline std::set<std::string> allowed_set(TokenConstraint& c, const TokenVocabulary& v) {
  std::vector<uint32_t> mask(size_t(c.mask_words()));
  c.allowed(mask.data());
  std::set<std::string> out;
  for (int64_t t = 0; t < v.size(); ++t)
    if (mask[size_t(t) >> 5] >> (t & 31) & 1) out.insert(v.bytes(int32_t(t)));
  return out;
}

inline bool mask_has(TokenConstraint& c, int32_t t) {
  std::vector<uint32_t> mask(size_t(c.mask_words()));
  c.allowed(mask.data());
  return mask[size_t(t) >> 5] >> (t & 31) & 1;
}

// Feeds text one byte token at a time (byte_vocab ids == byte values); false at the first rejected byte.
inline bool feed(TokenConstraint& c, const std::string& text) {
  for (unsigned char ch : text)
    if (!c.accept(int32_t(ch)).is_ok()) return false;
  return true;
}

// Does the grammar accept exactly this text (as a complete sentence)?
inline bool full_match(const std::shared_ptr<const Grammar>& g, const std::string& text) {
  TokenConstraint c(g);
  return feed(c, text) && c.can_end();
}

}  // namespace tern::test
