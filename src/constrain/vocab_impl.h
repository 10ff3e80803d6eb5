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
struct TrieNode {
  int32_t first_child = 0;  // children are nodes [first_child, first_child + n_children)
  int32_t token = -1;       // a token spelling exactly this prefix, or -1
  uint16_t n_children = 0;
  uint8_t byte = 0;         // the byte leading into the node
  uint8_t more = 0;         // 1: next_same[token] lists more tokens with these bytes (rare: saves a random read)
  uint32_t below = 0;       // the bytes on the paths below the node: an index into TokenTrie::byte_sets (here, not
                            // in an array of its own: a whole-subtree check reads it with the node, no extra miss)
};
// A set of bytes (256 bits).
struct ByteSet {
  uint64_t w[4] = {0, 0, 0, 0};
  bool operator==(const ByteSet&) const = default;
};
struct TokenTrie {
  std::vector<TrieNode> nodes;       // one array of 16-byte nodes: a walk touches one cache line per node
  std::vector<int32_t> next_same;    // [vocab] the next token with the same bytes, or -1
  std::vector<uint8_t> depth;        // [nodes] prefix length (capped at 255)
  std::vector<uint8_t> max_len;      // [nodes] longest token in the subtree (capped at 255)
  // For whole-subtree steps of a lexical walk (node_mask.cpp): a character-class run such as [A-Za-z0-9_.-]+
  // accepts every token below a trie node whose bytes below all lie in the class, so those tokens are added as one
  // range without visiting their nodes (~5k node visits instead of ~93k for that class with Llama-3's 128k tokens).
  std::vector<int32_t> sorted;       // token ids in byte order: a node's subtree holds sorted[tok_begin, tok_end)
  std::vector<int32_t> tok_begin, tok_end;  // [nodes]
  std::vector<ByteSet> byte_sets;    // the distinct sets (~34k for Llama-3's trie); [0] is the empty set
};

// Tokens of at most this many bytes are "short": lexical nodes that agree on every string this long share the
// short part of their masks (lexical_signature.h); only the ~1% longer tokens are walked per node.
constexpr int kShortTokenBytes = 16;

// A special token's spelling inside the grammar engine: kTokenTerminalByte, then its id in 4 bytes, big-endian.
constexpr uint8_t kTokenTerminalByte = 0xFF;
constexpr int kTokenTerminalBytes = 5;
std::string token_terminal_spelling(int32_t id);

struct VocabImpl {
  std::vector<std::string> bytes;  // [vocab] spellings (special tokens: token_terminal_spelling)
  std::unordered_map<std::string, int32_t> special_ids;  // special token text -> id
  TokenTrie trie;
  // The same over the tokens longer than kShortTokenBytes only (~1%): a lexical node walks it for the tokens its
  // class's shared short mask leaves out, without visiting the short tokens' subtrees. long_to_main: [long nodes]
  // the main trie's node with the same prefix (pop points are main-trie nodes).
  TokenTrie long_trie;
  std::vector<int32_t> long_to_main;
  int64_t words = 0;               // mask words
  mutable std::mutex mu;           // guards the two caches (each bounded by kMaxLexicalMasks)
  // "<lexical rule body>#<local node>" -> the node's whole mask (the same rule in another grammar).
  mutable std::unordered_map<std::string, std::shared_ptr<const NodeMask>> lexical_masks;
  // lexical_class(node, kShortTokenBytes) -> the short part of the mask of every node of that class.
  mutable std::unordered_map<int32_t, std::shared_ptr<const NodeMask>> short_masks;
  // The hash-consed behaviour classes of lexical nodes (lexical_signature.h): tuple -> id.
  mutable std::unordered_map<std::string, int32_t> classes;
  static constexpr size_t kMaxClasses = size_t(1) << 20;
  static constexpr size_t kMaxLexicalMasks = 4096;
};

}  // namespace tern::constrain
