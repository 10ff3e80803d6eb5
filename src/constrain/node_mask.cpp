// A node's context-independent mask: walk the token trie from the node alone (bottom of the stack = the node's
// own rule), pruning a subtree as soon as no stack survives its prefix.
#include <fmt/format.h>

#include <cstring>
#include <unordered_map>

#include "constrain/stack_pool.h"
#include "constrain/vocab_impl.h"

namespace tern::constrain {

namespace {

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

// A lexical rule (no calls): the walk state is one node of the rule's DFA, stepped through a dense table. Tokens
// and pop points are collected at trie depths in [lo, hi]; with lo > 1 only subtrees holding such tokens are walked.
void walk_lexical(const CompiledGrammar& g, const LexTable& lt, int32_t local, int lo, int hi,
                  std::vector<uint32_t>& bits, NodeMask* mask) {
  const TokenTrie& t = g.vocab.impl().trie;
  struct Item {
    int32_t trie, state;
  };
  std::vector<Item> todo = {{0, local}};
  while (!todo.empty()) {
    const Item it = todo.back();
    todo.pop_back();
    const int32_t* row = lt.next.data() + size_t(it.state) * 256;
    const int32_t c0 = t.nodes[size_t(it.trie)].first_child;
    const int32_t c1 = c0 + t.nodes[size_t(it.trie)].n_children;
    for (int32_t c = c0; c < c1; ++c) {
      const TrieNode& tn = t.nodes[size_t(c)];
      const int32_t d = row[tn.byte];
      if (d < 0) continue;
      const int depth = t.depth[size_t(c)];
      if (lo > 1 && t.max_len[size_t(c)] < lo) continue;  // no token long enough below
      if (depth >= lo)
        for (int32_t id = tn.token; id >= 0; id = tn.more ? t.next_same[size_t(id)] : -1) bits[size_t(id) >> 5] |= 1u << (id & 31);
      if (tn.n_children == 0) continue;
      if (lt.final[size_t(d)] && depth >= lo) mask->pop_points.push_back(c);
      if (lt.has_bytes[size_t(d)] && depth < hi) todo.push_back({c, d});
    }
  }
}

}  // namespace

std::shared_ptr<const NodeMask> compute_node_mask(const CompiledGrammar& g, int32_t node) {
  const VocabImpl& v = g.vocab.impl();
  const TokenTrie& t = v.trie;
  std::vector<uint32_t> bits(size_t(v.words), 0);
  auto mask = std::make_shared<NodeMask>();
  if (g.has_lex_table(g.nodes[size_t(node)].rule)) {
    const LexTable& lt = g.lex_table(g.nodes[size_t(node)].rule);
    const int32_t local = node - lt.base, rep = lt.rep[size_t(local)];
    if (rep == local) {
      walk_lexical(g, lt, local, 1, 255, bits, mask.get());
    } else {  // the representative's short part + this node's own walk over the long tokens
      const NodeMask& rm = g.node_mask(lt.base + rep);
      if (!rm.bits.empty()) {
        for (size_t w = 0; w < bits.size(); ++w) bits[w] = rm.bits[w] & v.short_tokens[w];
      } else {
        for (int32_t id : rm.ids)
          if (v.short_tokens[size_t(id) >> 5] >> (id & 31) & 1) bits[size_t(id) >> 5] |= 1u << (id & 31);
      }
      for (int32_t p : rm.pop_points)
        if (t.depth[size_t(p)] <= kShortTokenBytes) mask->pop_points.push_back(p);
      walk_lexical(g, lt, local, kShortTokenBytes + 1, 255, bits, mask.get());
    }
    finish_mask(bits, mask.get());
    return mask;
  }
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
  finish_mask(bits, mask.get());
  return mask;
}

bool CompiledGrammar::has_lex_table(int32_t rule) const {
  if (lexical_key[size_t(rule)].empty()) return false;
  const size_t end = size_t(rule) + 1 < rule_start.size() ? size_t(rule_start[size_t(rule) + 1]) : nodes.size();
  return end - size_t(rule_start[size_t(rule)]) <= kMaxLexTableNodes;
}

const LexTable& CompiledGrammar::lex_table(int32_t rule) const {
  std::lock_guard lk(mu_);
  auto& slot = lex_tables_[rule];
  if (slot) return *slot;
  auto lt = std::make_unique<LexTable>();
  lt->base = rule_start[size_t(rule)];
  const size_t end = size_t(rule) + 1 < rule_start.size() ? size_t(rule_start[size_t(rule) + 1]) : nodes.size();
  const size_t n = end - size_t(lt->base);
  lt->next.assign(n * 256, -1);
  lt->final.resize(n);
  lt->has_bytes.resize(n);
  for (size_t i = 0; i < n; ++i) {
    const Node& nd = nodes[size_t(lt->base) + i];
    lt->final[i] = nd.final;
    lt->has_bytes[i] = nd.edge_end > nd.edge_begin;
    for (uint32_t e = nd.edge_begin; e < nd.edge_end; ++e)
      for (int b = edges[e].lo; b <= edges[e].hi; ++b) lt->next[i * 256 + size_t(b)] = edges[e].to - lt->base;
  }
  // Moore refinement for kShortTokenBytes rounds over byte classes: nodes left in one class agree on every
  // string of up to kShortTokenBytes bytes (acceptance and where the rule may end).
  lt->rep.resize(n);
  std::vector<int32_t> byte_class(256), col_rep;
  {
    std::unordered_map<std::string, int32_t> cols;
    for (int b = 0; b < 256; ++b) {
      std::string key(n * sizeof(int32_t), '\0');
      for (size_t i = 0; i < n; ++i) std::memcpy(&key[i * sizeof(int32_t)], &lt->next[i * 256 + size_t(b)], sizeof(int32_t));
      auto [it, fresh] = cols.emplace(std::move(key), int32_t(col_rep.size()));
      if (fresh) col_rep.push_back(b);
      byte_class[size_t(b)] = it->second;
    }
  }
  std::vector<int32_t> cls(n), next_cls(n);
  for (size_t i = 0; i < n; ++i) cls[i] = lt->final[i];
  size_t classes = 0;
  for (int round = 0; round < kShortTokenBytes; ++round) {
    std::unordered_map<std::string, int32_t> ids;
    std::vector<int32_t> sig(col_rep.size() + 1);
    for (size_t i = 0; i < n; ++i) {
      sig[0] = cls[i];
      for (size_t k = 0; k < col_rep.size(); ++k) {
        const int32_t d = lt->next[i * 256 + size_t(col_rep[k])];
        sig[k + 1] = d < 0 ? -1 : cls[size_t(d)];
      }
      std::string key(reinterpret_cast<const char*>(sig.data()), sig.size() * sizeof(int32_t));
      next_cls[i] = ids.emplace(std::move(key), int32_t(ids.size())).first->second;
    }
    cls.swap(next_cls);
    if (ids.size() == classes) break;  // stable: no further split
    classes = ids.size();
  }
  std::unordered_map<int32_t, int32_t> first;
  for (size_t i = 0; i < n; ++i) lt->rep[i] = first.emplace(cls[i], int32_t(i)).first->second;
  slot = std::move(lt);
  return *slot;
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
