#include "constrain/matcher.h"

#include <fmt/format.h>

#include <cstring>

#include "constrain/vocab_impl.h"

namespace tern::constrain {

Matcher::Matcher(std::shared_ptr<const Grammar> grammar)
    : grammar_(std::move(grammar)), g_(grammar_->compiled()), pool_(g_, /*dense=*/false) {
  history_.push_back(pool_.closure_of(pool_.frame(g_.rule_start[size_t(g_.root)], -1)));
}

// Marks every token below trie_node (not trie_node's own) that the state accepts.
void Matcher::walk(int32_t trie_node, int32_t state, uint32_t* mask) {
  const TokenTrie& t = g_.vocab.impl().trie;
  todo_.assign(1, {trie_node, state});
  while (!todo_.empty()) {
    const Item it = todo_.back();
    todo_.pop_back();
    const int32_t c0 = t.nodes[size_t(it.trie)].first_child;
    const int32_t c1 = c0 + t.nodes[size_t(it.trie)].n_children;
    for (int32_t c = c0; c < c1; ++c) {
      const TrieNode& tn = t.nodes[size_t(c)];
      const int32_t s = pool_.step(it.state, tn.byte);
      if (s == StackPool::kDead) continue;
      for (int32_t id = tn.token; id >= 0; id = tn.more ? t.next_same[size_t(id)] : -1) mask[id >> 5] |= 1u << (id & 31);
      if (tn.n_children && pool_.has_frames(s)) todo_.push_back({c, s});
    }
  }
}

// The token trie node c (its byte stepped from state) and everything below it that the state accepts.
void Matcher::walk_child(int32_t c, int32_t state, uint32_t* mask) {
  const TokenTrie& t = g_.vocab.impl().trie;
  const TrieNode& tn = t.nodes[size_t(c)];
  const int32_t s = pool_.step(state, tn.byte);
  if (s == StackPool::kDead) return;
  for (int32_t id = tn.token; id >= 0; id = tn.more ? t.next_same[size_t(id)] : -1) mask[id >> 5] |= 1u << (id & 31);
  if (tn.n_children && pool_.has_frames(s)) walk(c, s, mask);
}

void Matcher::allowed(uint32_t* mask) {
  const int64_t words = g_.vocab.impl().words;
  std::memset(mask, 0, size_t(words) * sizeof(uint32_t));
  const int32_t st = history_.back();
  // A copy: walks add states to the pool, which may move its storage.
  top_.assign(pool_.frames_begin(st), pool_.frames_end(st));
  for (const int32_t f : top_) {
    const NodeMask& nm = g_.node_mask(pool_.node_of(f));
    nm.or_into(mask, words);
    if (!nm.has_pop_points()) continue;
    const int32_t parent = pool_.parent_of(f);
    if (parent < 0) continue;  // the grammar ends there: nothing may follow inside the token
    const int32_t after = pool_.closure_of(parent);
    if (after == StackPool::kDead || !pool_.has_frames(after)) continue;
    // Only below pop points, and by the bytes the caller takes next (none: nothing to walk).
    nm.for_pop_walks(first_bytes(after), [&](int32_t c) { walk_child(c, after, mask); },
                     [&](int32_t p) { walk(p, after, mask); });
  }
}

// The byte edges of the state's top nodes: a state's frames are its byte-consuming stacks (closure expanded
// calls and returns), and every edge leads to a node that can still finish, so byte b continues the state iff
// some top node has an edge on b.
const uint64_t* Matcher::first_bytes(int32_t state) {
  auto [it, fresh] = first_bytes_.try_emplace(state);
  if (fresh) {
    for (const int32_t* f = pool_.frames_begin(state); f != pool_.frames_end(state); ++f) {
      const Node& n = g_.nodes[size_t(pool_.node_of(*f))];
      for (uint32_t e = n.edge_begin; e < n.edge_end; ++e)
        for (int b = g_.edges[e].lo; b <= g_.edges[e].hi; ++b) it->second[size_t(b >> 6)] |= uint64_t(1) << (b & 63);
    }
  }
  return it->second.data();
}

Status Matcher::accept(int32_t token) {
  const std::string& bytes = g_.vocab.spelling(token);
  if (bytes.empty()) return Status::error(fmt::format("grammar: token {} is not allowed here (it spells no text)", token));
  int32_t s = history_.back();
  for (char c : bytes) {
    s = pool_.step(s, uint8_t(c));
    if (s == StackPool::kDead) return Status::error(fmt::format("grammar: token {} is not allowed here", token));
  }
  history_.push_back(s);
  return Status::ok();
}

void Matcher::rollback(int n) {
  n = std::max(0, std::min(n, accepted()));
  history_.resize(history_.size() - size_t(n));
}

bool Matcher::accepts_bytes(std::string_view bytes) {
  int32_t s = history_.back();
  for (char c : bytes) {
    s = pool_.step(s, uint8_t(c));
    if (s == StackPool::kDead) return false;
  }
  return true;
}

}  // namespace tern::constrain
