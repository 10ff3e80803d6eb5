// The compiled form of a grammar: one deterministic byte automaton per rule, whose nodes may also call other rules
// (a recursive transition network = a pushdown automaton over bytes). Node masks (which tokens a node accepts on
// its own, and where the rule may end inside a token) are computed on first use and cached here, or, for lexical
// rules (no calls: JSON strings, numbers, ...), in the vocabulary where every grammar shares them.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "constrain/grammar_ast.h"
#include "constrain/grammar_limits.h"
#include "constrain/token_vocabulary.h"
#include "core/status.h"

namespace tern::constrain {

struct ByteEdge {
  uint8_t lo, hi;  // inclusive byte range
  int32_t to;      // node
};
struct CallEdge {
  int32_t rule;  // callee
  int32_t ret;   // node of this rule to continue at after the callee ends
};
struct Node {
  int32_t rule = -1;
  bool final = false;        // the rule may end here
  bool pure_return = false;  // final with no edges and no calls: a call returning here returns further (tail call)
  uint32_t edge_begin = 0, edge_end = 0;  // ByteEdges, sorted by lo, disjoint
  uint32_t call_begin = 0, call_end = 0;  // CallEdges
};

// What one node accepts, independent of the stack below it (see docs/structured-output.md):
//   tokens whose bytes all fit inside the node's rule (callees included), or end exactly where the rule may end;
//   pop_points: trie nodes (with children) where the rule may end mid-token: the rest of those tokens depends on
//   the caller and is checked at run time against the real stack.
// A lexical node's mask is its class's shared short part (lexical_signature.h) plus its own tokens longer than
// kShortTokenBytes: `shared` points at the former, whose tokens and pop points count as this mask's too.
struct NodeMask {
  std::vector<uint32_t> bits;        // [vocab words] when many tokens are accepted
  std::vector<int32_t> ids;          // accepted token ids otherwise
  std::vector<int32_t> pop_points;   // trie node ids
  std::shared_ptr<const NodeMask> shared;  // null, or a mask without `shared` of its own
  // The bytes that lead from any of pop_points to a child: a caller whose state takes none of them adds no token
  // below the pop points, and the run-time walk below them (one step per child of ~every trie node, for a free
  // text rule) is skipped (e.g. free text whose caller continues only with a special token).
  uint64_t pop_bytes[4] = {0, 0, 0, 0};
  // The same walk by byte, for the bytes that lead out of few pop points ('<' below free text: Hermes' caller
  // continues only with "<tool_call>"): rare_children[rare_offsets[b] .. rare_offsets[b + 1]) are the pop points'
  // children reached by byte b; common_bytes are the bytes not indexed. rare_offsets is empty without an index.
  std::vector<uint32_t> rare_offsets;  // [257]
  std::vector<int32_t> rare_children;
  uint64_t common_bytes[4] = {0, 0, 0, 0};

  // mask |= this node's tokens (mask: [vocab words]); f(p) for each pop point.
  void or_into(uint32_t* mask, int64_t words) const {
    if (shared) shared->or_into(mask, words);
    if (!bits.empty()) {
      for (int64_t w = 0; w < words; ++w) mask[w] |= bits[size_t(w)];
    } else {
      for (int32_t id : ids) mask[id >> 5] |= 1u << (id & 31);
    }
  }
  template <class F>
  void for_each_pop_point(F&& f) const {
    if (shared)
      for (int32_t p : shared->pop_points) f(p);
    for (int32_t p : pop_points) f(p);
  }
  bool has_pop_points() const { return !pop_points.empty() || (shared && !shared->pop_points.empty()); }
  // The run-time walk below the pop points for a caller that takes the bytes `next` (256 bits): child(c) for the
  // trie nodes c (children of pop points, by a byte in `next`) to step into when the index serves every byte
  // in question, else pop(p) for every pop point; nothing when no pop point leads to such a byte.
  template <class Child, class Pop>
  void for_pop_walks(const uint64_t* next, Child&& child, Pop&& pop) const {
    if (shared) shared->for_pop_walks(next, child, pop);
    uint64_t hit[4], common = 0, any = 0;
    for (int k = 0; k < 4; ++k) hit[k] = pop_bytes[k] & next[k], any |= hit[k], common |= hit[k] & common_bytes[k];
    if (!any) return;
    if (rare_offsets.empty() || common) {
      for (int32_t p : pop_points) pop(p);
      return;
    }
    for (int k = 0; k < 4; ++k)
      for (uint64_t m = hit[k]; m; m &= m - 1) {
        const int b = k * 64 + __builtin_ctzll(m);
        for (uint32_t i = rare_offsets[size_t(b)]; i < rare_offsets[size_t(b) + 1]; ++i) child(rare_children[i]);
      }
  }
};

struct CompiledGrammar {
  std::string text;  // canonical GBNF
  TokenVocabulary vocab;
  std::vector<Node> nodes;
  std::vector<ByteEdge> edges;
  std::vector<CallEdge> calls;
  std::vector<int32_t> rule_start;        // [rules] first node of each rule's automaton
  std::vector<std::string> rule_names;    // [rules]
  std::vector<std::string> lexical_key;   // [rules] the rule's GBNF body when it calls nothing, else ""
  int32_t root = -1;
  // [nodes] the most byte steps from the node through non-final nodes (itself included): 255 = unbounded (a loop),
  // -1 = the node is final (grammar_builder.cpp; whole-subtree steps of lexical walks, node_mask.cpp).
  std::vector<int16_t> run_bound;

  explicit CompiledGrammar(TokenVocabulary v) : vocab(std::move(v)) {}

  int32_t next(int32_t node, uint8_t b) const {
    const Node& n = nodes[size_t(node)];
    for (uint32_t i = n.edge_begin; i < n.edge_end; ++i) {
      const ByteEdge& e = edges[i];
      if (b < e.lo) return -1;
      if (b <= e.hi) return e.to;
    }
    return -1;
  }
  bool has_bytes(int32_t node) const { return nodes[size_t(node)].edge_end > nodes[size_t(node)].edge_begin; }

  // The node's mask, computed on first use (thread-safe).
  const NodeMask& node_mask(int32_t node) const;
  // (lexical node << 8 | bytes to go) -> its class in the vocabulary (lexical_signature.h); guarded by the
  // vocabulary's mutex, like the class table the ids point into.
  mutable std::unordered_map<uint64_t, int32_t> class_memo;
  void init_mask_slots();

 private:
  mutable std::mutex mu_;
  mutable std::unique_ptr<std::atomic<const NodeMask*>[]> slots_;
  mutable std::vector<std::shared_ptr<const NodeMask>> owned_;
};

// Builds the automata from a parsed grammar; checks that every reachable rule can finish, and rejects left
// recursion (like llama.cpp) and grammars past the limits.
Result<std::shared_ptr<CompiledGrammar>> build_grammar(const GrammarAst& ast, const TokenVocabulary& vocab,
                                                       const GrammarLimits& limits);

// Computes a node's mask by walking the vocabulary trie (node_mask.cpp).
std::shared_ptr<const NodeMask> compute_node_mask(const CompiledGrammar& g, int32_t node);
// The same mask by one plain walk from the node, without the vocabulary's shared short masks nor whole-subtree steps
// (tests compare the two; pop points may come in another order).
std::shared_ptr<const NodeMask> reference_node_mask(const CompiledGrammar& g, int32_t node);

}  // namespace tern::constrain
