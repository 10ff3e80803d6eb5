// The per-request matcher behind TokenConstraint: the current set of stacks, the history of states (rollback),
// and the mask: OR of the cached masks of the top nodes, plus the tokens that end a rule mid-token, checked by
// walking the trie below each pop point with the real caller's state.
#pragma once

#include <array>
#include <memory>
#include <unordered_map>
#include <string_view>
#include <vector>

#include "constrain/stack_pool.h"
#include "constrain/token_constraint.h"

namespace tern::constrain {

class Matcher {
 public:
  explicit Matcher(std::shared_ptr<const Grammar> grammar);

  int64_t vocab_size() const { return g_.vocab.size(); }
  void allowed(uint32_t* mask);
  Status accept(int32_t token);
  void rollback(int n);
  int accepted() const { return int(history_.size()) - 1; }
  bool can_end() const { return pool_.ended(history_.back()); }
  bool must_end() const { return can_end() && !pool_.has_frames(history_.back()); }
  bool accepts_bytes(std::string_view bytes);

 private:
  void walk(int32_t trie_node, int32_t state, uint32_t* mask);
  void walk_child(int32_t trie_node, int32_t state, uint32_t* mask);
  // The bytes the state can take next (256 bits), memoised per state.
  const uint64_t* first_bytes(int32_t state);

  std::shared_ptr<const Grammar> grammar_;
  const CompiledGrammar& g_;
  StackPool pool_;
  std::vector<int32_t> history_;  // states; [0] = before any token
  struct Item {
    int32_t trie, state;
  };
  std::vector<Item> todo_;
  std::vector<int32_t> top_;
  std::unordered_map<int32_t, std::array<uint64_t, 4>> first_bytes_;
};

}  // namespace tern::constrain
