// Inside a TokenVocabulary: token bytes, the byte trie the mask walks, and the shared lexical-rule mask cache.
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "constrain/compiled_grammar.h"

namespace tern::constrain {

// Trie over all token byte strings. Node 0 is the root (empty prefix); the children of a node are contiguous.
struct TokenTrie {
  std::vector<uint8_t> byte;         // [nodes] the byte leading into the node
  std::vector<int32_t> first_child;  // [nodes]
  std::vector<uint16_t> n_children;  // [nodes]
  std::vector<int32_t> token;        // [nodes] a token spelling exactly this prefix, or -1
  std::vector<int32_t> next_same;    // [vocab] the next token with the same bytes, or -1
};

struct VocabImpl {
  std::vector<std::string> bytes;  // [vocab]
  TokenTrie trie;
  int64_t words = 0;               // mask words
  mutable std::mutex mu;           // guards lexical_masks (a cache: bounded by kMaxLexicalMasks)
  mutable std::unordered_map<std::string, std::shared_ptr<const NodeMask>> lexical_masks;
  static constexpr size_t kMaxLexicalMasks = 4096;
};

}  // namespace tern::constrain
