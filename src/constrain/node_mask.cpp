// A node's context-independent mask: walk the token trie from the node alone (bottom of the stack = the node's
// own rule), pruning a subtree as soon as no stack survives its prefix.
#include <fmt/format.h>

#include "constrain/stack_pool.h"
#include "constrain/vocab_impl.h"

namespace tern::constrain {

std::shared_ptr<const NodeMask> compute_node_mask(const CompiledGrammar& g, int32_t node) {
  const VocabImpl& v = g.vocab.impl();
  const TokenTrie& t = v.trie;
  StackPool pool(g, /*dense=*/true);
  std::vector<int32_t> accepted;
  auto mask = std::make_shared<NodeMask>();
  struct Item {
    int32_t trie, state;
  };
  std::vector<Item> todo = {{0, pool.single(node)}};
  while (!todo.empty()) {
    const Item it = todo.back();
    todo.pop_back();
    const int32_t c0 = t.first_child[size_t(it.trie)];
    const int32_t c1 = c0 + t.n_children[size_t(it.trie)];
    for (int32_t c = c0; c < c1; ++c) {
      const int32_t s = pool.step(it.state, t.byte[size_t(c)]);
      if (s == StackPool::kDead) continue;
      for (int32_t id = t.token[size_t(c)]; id >= 0; id = t.next_same[size_t(id)]) accepted.push_back(id);
      if (t.n_children[size_t(c)] == 0) continue;
      if (pool.ended(s)) mask->pop_points.push_back(c);
      if (pool.has_frames(s)) todo.push_back({c, s});
    }
  }
  if (int64_t(accepted.size()) > v.words) {
    mask->bits.assign(size_t(v.words), 0);
    for (int32_t id : accepted) mask->bits[size_t(id) >> 5] |= 1u << (id & 31);
  } else {
    mask->ids = std::move(accepted);
  }
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
