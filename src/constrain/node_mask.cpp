// A node's context-independent mask: walk the token trie from the node alone (bottom of the stack = the node's
// own rule), pruning a subtree as soon as no stack survives its prefix.
#include <fmt/format.h>

#include <algorithm>
#include <cstring>
#include <optional>
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

// Whole-subtree steps of a lexical walk. A trie node c reached in a non-final state d, whose bytes below (the set B)
// all lie in one group of d's edges (bytes with one target), is wholly accepted when, step after step, the target
// has a group holding all of the previous group's bytes, no state met is final, for as many steps as c has bytes
// below (down to the walk's depth limit): then every token below c is accepted and no pop point lies below it, and
// the walk adds the tokens as one range without visiting their nodes. A character-class run ([A-Za-z0-9_.-]+, a
// JSON string's body) is a group leading back to its own state: unbounded; a counted one ([A-Za-z0-9]{12}, a
// maxLength) a chain of states with equal groups. run(group) is that number of steps (255: unbounded), computed once
// per group and walk, so a check costs a group lookup and one 256-bit subset test.
class WholeSubtrees {
 public:
  // node: the walk's start; its rule's nodes are the only states the walk meets (a lexical rule calls nothing).
  WholeSubtrees(const CompiledGrammar& g, int32_t node) : g_(g) {
    const int32_t rule = g.nodes[size_t(node)].rule;
    begin_ = g.rule_start[size_t(rule)];
    const int32_t end = size_t(rule) + 1 < g.rule_start.size() ? g.rule_start[size_t(rule) + 1] : int32_t(g.nodes.size());
    range_.assign(size_t(end - begin_), {0, 0});
  }

  // How many steps below a trie node in state d with bytes below `bytes` are surely accepted (see above): -1 when
  // the bytes do not all lie in one group of d.
  int run(int32_t d, const ByteSet& bytes) {
    int first = -1;
    for (int k = 0; k < 4 && first < 0; ++k)
      if (bytes.w[k]) first = k * 64 + __builtin_ctzll(bytes.w[k]);
    if (first < 0) return -1;
    const auto [g0, g1] = groups(d);
    for (uint32_t i = g0; i < g1; ++i) {
      const ByteSet& gb = groups_[i].bytes;
      if (!(gb.w[first >> 6] >> (first & 63) & 1)) continue;
      for (int k = 0; k < 4; ++k)
        if (bytes.w[k] & ~gb.w[k]) return -1;
      return group_run(i);
    }
    return -1;
  }

 private:
  static constexpr int16_t kUnknown = -2;
  struct Group {
    int32_t from, to;
    ByteSet bytes;
    int16_t run = kUnknown;
  };

  bool subset(const ByteSet& a, const ByteSet& b) const {
    for (int k = 0; k < 4; ++k)
      if (a.w[k] & ~b.w[k]) return false;
    return true;
  }

  // run(group) = 0 when its target is final, 255 when it leads back to its own state, else 1 + run(the target's
  // group holding all its bytes), or 1 without one. Followed down the chain, then filled in back up.
  int group_run(uint32_t gi) {
    const uint32_t start = gi;
    path_.clear();
    int val;
    for (;;) {
      const Group gr = groups_[gi];  // a copy: groups() below may grow groups_
      if (gr.run != kUnknown) {
        val = gr.run;
        break;
      }
      if (g_.nodes[size_t(gr.to)].final) {
        val = groups_[gi].run = 0;
        break;
      }
      if (gr.to == gr.from || path_.size() >= 255) {  // a loop (or a chain as long as the cap)
        val = groups_[gi].run = 255;
        break;
      }
      path_.push_back(gi);
      const auto [t0, t1] = groups(gr.to);
      uint32_t next = t1;
      for (uint32_t i = t0; i < t1 && next == t1; ++i)
        if (subset(gr.bytes, groups_[i].bytes)) next = i;
      if (next == t1) {
        val = 0;
        break;
      }
      gi = next;
    }
    for (size_t i = path_.size(); i-- > 0;) {
      val = std::min(255, val + 1);
      groups_[path_[i]].run = int16_t(val);
    }
    return groups_[start].run;
  }

  // s's edges grouped by target, made on first use.
  std::pair<uint32_t, uint32_t> groups(int32_t s) {
    if (s < begin_ || size_t(s - begin_) >= range_.size()) {  // not the walk's rule (cannot happen): no group
      groups_.push_back({s, s, ByteSet{}, 0});
      return {uint32_t(groups_.size() - 1), uint32_t(groups_.size())};
    }
    auto& range = range_[size_t(s - begin_)];
    if (range.second) return range;
    const uint32_t begin = uint32_t(groups_.size());
    const Node& n = g_.nodes[size_t(s)];
    for (uint32_t i = n.edge_begin; i < n.edge_end; ++i) {
      const ByteEdge& e = g_.edges[i];
      uint32_t gi = begin;
      while (gi < groups_.size() && groups_[gi].to != e.to) ++gi;
      if (gi == groups_.size()) groups_.push_back({s, e.to, ByteSet{}});
      ByteSet& set = groups_[gi].bytes;
      for (int k = 0; k < 4; ++k) {
        const int a = std::max(int(e.lo), k * 64), z = std::min(int(e.hi), k * 64 + 63);
        if (a > z) continue;
        const uint64_t ones = z - a == 63 ? ~uint64_t(0) : (uint64_t(1) << (z - a + 1)) - 1;
        set.w[k] |= ones << (a - k * 64);
      }
    }
    if (groups_.size() == begin) groups_.push_back({s, s, ByteSet{}, 0});  // no edges: a group no byte is in
    return range = {begin, uint32_t(groups_.size())};
  }

  const CompiledGrammar& g_;
  int32_t begin_ = 0;
  std::vector<std::pair<uint32_t, uint32_t>> range_;  // [rule nodes] groups_[first, last); last 0: not made yet
  std::vector<Group> groups_;
  std::vector<uint32_t> path_;
};

// A lexical rule (no calls): the walk state is one node of the rule's DFA. Tokens are collected at trie depths
// in [lo, hi], and pop points at trie nodes (with children) of depth >= lo; with lo > 1 only subtrees that hold
// tokens long enough are walked (max_len), and nothing deeper than hi is.
// add(id) for each token.
// On the long-token trie (long_trie: lo > kShortTokenBytes), pop points are mapped to the main trie's nodes.
// whole_subtrees: add the tokens of subtrees that UniformRuns shows are all accepted without visiting their nodes
// (off: the plain walk, which the tests compare against).
template <class Add>
void walk_lexical(const CompiledGrammar& g, int32_t node, int lo, int hi, NodeMask* mask, Add&& add,
                  bool whole_subtrees = true) {
  const VocabImpl& v = g.vocab.impl();
  const bool long_only = lo > kShortTokenBytes;
  const TokenTrie& t = long_only ? v.long_trie : v.trie;
  // Every token of the long trie is longer than kShortTokenBytes: with lo just past that, none is too short.
  const bool none_too_short = long_only && lo == kShortTokenBytes + 1;
  std::optional<WholeSubtrees> runs;
  if (whole_subtrees) runs.emplace(g, node);
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
      if (runs && tn.n_children > 0 && !g.nodes[size_t(d)].final) {
        const int max_len = t.max_len[size_t(c)];
        const int need = std::min(max_len, hi) - depth;
        if (need <= g.run_bound[size_t(d)] && runs->run(d, t.byte_sets[tn.below]) >= need) {
          // Tokens below c are walked only down to depth hi, and only those of at least lo bytes are added.
          const bool all = (depth >= lo || none_too_short) && max_len <= hi && max_len < 255;
          for (int32_t i = t.tok_begin[size_t(c)]; i < t.tok_end[size_t(c)]; ++i) {
            const int32_t id = t.sorted[size_t(i)];
            if (!all) {
              const size_t len = v.bytes[size_t(id)].size();
              if (len < size_t(lo) || len > size_t(hi)) continue;
            }
            add(id);
          }
          continue;
        }
      }
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
    walk_lexical(g, node, 1, 255, mask.get(), [&](int32_t id) { bits[size_t(id) >> 5] |= 1u << (id & 31); },
                 /*whole_subtrees=*/false);
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
