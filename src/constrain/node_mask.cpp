// A node's context-independent mask: walk the token trie from the node alone (bottom of the stack = the node's
// own rule), pruning a subtree as soon as no stack survives its prefix.
#include <fmt/format.h>

#include <cstring>
#include <unordered_map>

#include "constrain/lexical_signature.h"
#include "constrain/stack_pool.h"
#include "constrain/vocab_impl.h"

namespace tern::constrain {

namespace {

// mask->pop_bytes from its pop points (main-trie nodes), and the by-byte index of their children for the bytes
// that lead out of at most 1/16 of them (when there are many pop points: free text has ~one per trie node).
void set_pop_bytes(const CompiledGrammar& g, NodeMask* mask) {
  const TokenTrie& t = g.vocab.impl().trie;
  std::vector<uint32_t> count(256, 0);
  for (int32_t p : mask->pop_points) {
    const TrieNode& pn = t.nodes[size_t(p)];
    for (int32_t c = pn.first_child; c < pn.first_child + pn.n_children; ++c) {
      const uint8_t b = t.nodes[size_t(c)].byte;
      mask->pop_bytes[b >> 6] |= uint64_t(1) << (b & 63);
      ++count[b];
    }
  }
  const size_t n = mask->pop_points.size();
  if (n < 64) return;  // the plain walk is cheap
  std::vector<uint32_t>& off = mask->rare_offsets;
  off.assign(257, 0);
  for (int b = 0; b < 256; ++b) {
    const bool rare = size_t(count[size_t(b)]) * 16 <= n;
    if (!rare) mask->common_bytes[b >> 6] |= uint64_t(1) << (b & 63);
    off[size_t(b) + 1] = off[size_t(b)] + (rare ? count[size_t(b)] : 0);
  }
  mask->rare_children.resize(off[256]);
  std::vector<uint32_t> at(off.begin(), off.end() - 1);
  for (int32_t p : mask->pop_points) {
    const TrieNode& pn = t.nodes[size_t(p)];
    for (int32_t c = pn.first_child; c < pn.first_child + pn.n_children; ++c) {
      const uint8_t b = t.nodes[size_t(c)].byte;
      if (!(mask->common_bytes[b >> 6] >> (b & 63) & 1)) mask->rare_children[at[b]++] = c;
    }
  }
}

// Token bits -> the compact form (ids when few).
void finish_mask(std::vector<uint32_t>& bits, NodeMask* mask) {
  int64_t n = 0;
  for (uint32_t w : bits) n += __builtin_popcount(w);
  if (n > int64_t(bits.size())) {
    mask->bits = std::move(bits);
    return;
  }
  mask->ids.reserve(size_t(n));
  for (size_t w = 0; w < bits.size(); ++w)
    for (uint32_t m = bits[w]; m; m &= m - 1) mask->ids.push_back(int32_t(w * 32 + size_t(__builtin_ctz(m))));
}

// A lexical rule (no calls): the walk state is one node of the rule's DFA. Tokens are collected at trie depths
// in [lo, hi], and pop points at trie nodes (with children) of depth >= lo; with lo > 1 only subtrees that hold
// tokens long enough are walked (max_len), and nothing deeper than hi is.
// add(id) for each token.
// On the long-token trie (long_trie: lo > kShortTokenBytes), pop points are mapped to the main trie's nodes.
template <class Add>
void walk_lexical(const CompiledGrammar& g, int32_t node, int lo, int hi, NodeMask* mask, Add&& add) {
  const VocabImpl& v = g.vocab.impl();
  const bool long_only = lo > kShortTokenBytes;
  const TokenTrie& t = long_only ? v.long_trie : v.trie;
  struct Item {
    int32_t trie, state;
  };
  std::vector<Item> todo = {{0, node}};
  while (!todo.empty()) {
    const Item it = todo.back();
    todo.pop_back();
    const int32_t c0 = t.nodes[size_t(it.trie)].first_child;
    const int32_t c1 = c0 + t.nodes[size_t(it.trie)].n_children;
    for (int32_t c = c0; c < c1; ++c) {
      const TrieNode& tn = t.nodes[size_t(c)];
      if (lo > 1 && t.max_len[size_t(c)] < lo) continue;  // no token long enough below
      const int32_t d = g.next(it.state, tn.byte);
      if (d < 0) continue;
      const int depth = t.depth[size_t(c)];
      if (depth >= lo)
        for (int32_t id = tn.token; id >= 0; id = tn.more ? t.next_same[size_t(id)] : -1) add(id);
      if (tn.n_children == 0) continue;
      const Node& dn = g.nodes[size_t(d)];
      if (dn.final && depth >= lo) mask->pop_points.push_back(long_only ? v.long_to_main[size_t(c)] : c);
      if (dn.edge_end > dn.edge_begin && depth < hi) todo.push_back({c, d});
    }
  }
}

// The short part of a lexical node's mask (tokens of up to kShortTokenBytes bytes, pop points that shallow),
// shared through the vocabulary by every node with the same signature (lexical_signature.h).
std::shared_ptr<const NodeMask> short_lexical_mask(const CompiledGrammar& g, int32_t node) {
  const VocabImpl& v = g.vocab.impl();
  const int32_t key = lexical_class(g, node, kShortTokenBytes);
  if (key >= 0) {
    std::lock_guard lk(v.mu);
    auto it = v.short_masks.find(key);
    if (it != v.short_masks.end()) return it->second;
  }
  std::vector<uint32_t> bits(size_t(v.words), 0);
  auto mask = std::make_shared<NodeMask>();
  walk_lexical(g, node, 1, kShortTokenBytes, mask.get(), [&](int32_t id) { bits[size_t(id) >> 5] |= 1u << (id & 31); });
  finish_mask(bits, mask.get());
  set_pop_bytes(g, mask.get());
  std::lock_guard lk(v.mu);
  if (key < 0 || v.short_masks.size() >= VocabImpl::kMaxLexicalMasks) return mask;
  return v.short_masks.emplace(key, std::move(mask)).first->second;
}

// A node of a rule with calls: the walk state is a set of stacks (StackPool), bottom = the node alone; pop points
// are where the node's own rule may end mid-token.
void stack_walk(const CompiledGrammar& g, int32_t node, std::vector<uint32_t>& bits, NodeMask* mask) {
  const TokenTrie& t = g.vocab.impl().trie;
  StackPool pool(g, /*dense=*/true);
  struct Item {
    int32_t trie, state;
  };
  std::vector<Item> todo = {{0, pool.single(node)}};
  while (!todo.empty()) {
    const Item it = todo.back();
    todo.pop_back();
    const int32_t c0 = t.nodes[size_t(it.trie)].first_child;
    const int32_t c1 = c0 + t.nodes[size_t(it.trie)].n_children;
    for (int32_t c = c0; c < c1; ++c) {
      const TrieNode& tn = t.nodes[size_t(c)];
      const int32_t s = pool.step(it.state, tn.byte);
      if (s == StackPool::kDead) continue;
      for (int32_t id = tn.token; id >= 0; id = tn.more ? t.next_same[size_t(id)] : -1) bits[size_t(id) >> 5] |= 1u << (id & 31);
      if (tn.n_children == 0) continue;
      if (pool.ended(s)) mask->pop_points.push_back(c);
      if (pool.has_frames(s)) todo.push_back({c, s});
    }
  }
}

}  // namespace

std::shared_ptr<const NodeMask> reference_node_mask(const CompiledGrammar& g, int32_t node) {
  std::vector<uint32_t> bits(size_t(g.vocab.impl().words), 0);
  auto mask = std::make_shared<NodeMask>();
  if (!g.lexical_key[size_t(g.nodes[size_t(node)].rule)].empty())
    walk_lexical(g, node, 1, 255, mask.get(), [&](int32_t id) { bits[size_t(id) >> 5] |= 1u << (id & 31); });
  else stack_walk(g, node, bits, mask.get());
  finish_mask(bits, mask.get());
  set_pop_bytes(g, mask.get());
  return mask;
}

std::shared_ptr<const NodeMask> compute_node_mask(const CompiledGrammar& g, int32_t node) {
  auto mask = std::make_shared<NodeMask>();
  if (!g.lexical_key[size_t(g.nodes[size_t(node)].rule)].empty()) {
    // The class's short part by reference (no copy of a 16 KB bitset per string position), plus the long tokens
    // (~1% of a vocabulary) as ids.
    mask->shared = short_lexical_mask(g, node);
    walk_lexical(g, node, kShortTokenBytes + 1, 255, mask.get(), [&](int32_t id) { mask->ids.push_back(id); });
    set_pop_bytes(g, mask.get());
    return mask;
  }
  std::vector<uint32_t> bits(size_t(g.vocab.impl().words), 0);
  stack_walk(g, node, bits, mask.get());
  finish_mask(bits, mask.get());
  set_pop_bytes(g, mask.get());
  return mask;
}

void CompiledGrammar::init_mask_slots() {
  slots_.reset(new std::atomic<const NodeMask*>[nodes.size()]);
  for (size_t i = 0; i < nodes.size(); ++i) slots_[i].store(nullptr, std::memory_order_relaxed);
}

const NodeMask& CompiledGrammar::node_mask(int32_t node) const {
  const NodeMask* m = slots_[size_t(node)].load(std::memory_order_acquire);
  if (m) return *m;
  std::shared_ptr<const NodeMask> mask;
  const int32_t rule = nodes[size_t(node)].rule;
  const std::string& lex = lexical_key[size_t(rule)];
  const VocabImpl& v = vocab.impl();
  std::string key;
  if (!lex.empty()) {  // the same lexical rule in any grammar: same automaton, same mask
    key = fmt::format("{}#{}", lex, node - rule_start[size_t(rule)]);
    std::lock_guard lk(v.mu);
    auto it = v.lexical_masks.find(key);
    if (it != v.lexical_masks.end()) mask = it->second;
  }
  if (!mask) {
    mask = compute_node_mask(*this, node);
    if (!key.empty()) {
      std::lock_guard lk(v.mu);
      if (v.lexical_masks.size() < VocabImpl::kMaxLexicalMasks) mask = v.lexical_masks.emplace(key, mask).first->second;
    }
  }
  std::lock_guard lk(mu_);
  const NodeMask* cur = slots_[size_t(node)].load(std::memory_order_acquire);
  if (cur) return *cur;
  owned_.push_back(mask);
  slots_[size_t(node)].store(mask.get(), std::memory_order_release);
  return *mask;
}

}  // namespace tern::constrain

namespace tern::constrain {

// The warm-up (warm_up.cpp): the short masks of every node of the grammar's lexical rules.
void warm_short_masks(const CompiledGrammar& g, const std::atomic<bool>* stop) {
  for (size_t n = 0; n < g.nodes.size(); ++n) {
    if (stop && stop->load(std::memory_order_relaxed)) return;
    if (!g.lexical_key[size_t(g.nodes[n].rule)].empty() && g.has_bytes(int32_t(n))) short_lexical_mask(g, int32_t(n));
  }
}

}  // namespace tern::constrain
