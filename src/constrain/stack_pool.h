// The run-time state of the pushdown automaton: a set of stacks. Stacks are interned frames (node, parent frame),
// so stacks share their tails and a set of stacks is a short sorted list of frame ids; sets are interned too and
// the byte step between them is memoised. Only stacks whose top node consumes bytes are kept (calls, returns and
// rule ends are expanded by closure); `ended` says a path has finished the bottom rule: the whole grammar (in a
// request's matcher) or the node's own rule (in a node-mask walk, whose bottom is the node alone).
#pragma once

#include <cstdint>
#include <string>
#include <unordered_map>
#include <vector>

#include "constrain/compiled_grammar.h"

namespace tern::constrain {

class StackPool {
 public:
  static constexpr int32_t kDead = -1;  // no stack and not ended

  // dense: memoise steps in a [states x 256] table (node-mask walks: few states, many steps); else a hash map.
  StackPool(const CompiledGrammar& g, bool dense) : g_(g), dense_(dense) {}

  int32_t frame(int32_t node, int32_t parent);
  // The state {frame(node, bottom)} without closure (a node-mask walk starts here).
  int32_t single(int32_t node);
  // The closure of one frame (a stack).
  int32_t closure_of(int32_t frame);
  int32_t step(int32_t state, uint8_t byte);

  const int32_t* frames_begin(int32_t state) const { return flat_.data() + states_[size_t(state)].begin; }
  const int32_t* frames_end(int32_t state) const { return flat_.data() + states_[size_t(state)].end; }
  bool has_frames(int32_t state) const { return states_[size_t(state)].end > states_[size_t(state)].begin; }
  bool ended(int32_t state) const { return states_[size_t(state)].ended; }
  int32_t node_of(int32_t frame) const { return frames_[size_t(frame)].node; }
  int32_t parent_of(int32_t frame) const { return frames_[size_t(frame)].parent; }

 private:
  struct Frame {
    int32_t node, parent;
  };
  struct State {
    uint32_t begin, end;
    bool ended;
  };
  void closure_into(int32_t frame);
  int32_t intern_tmp();

  const CompiledGrammar& g_;
  bool dense_;
  std::vector<Frame> frames_;
  std::unordered_map<uint64_t, int32_t> frame_ids_;
  std::vector<State> states_;
  std::vector<int32_t> flat_;
  std::unordered_map<std::string, int32_t> state_ids_;
  std::vector<int32_t> dense_memo_;                // [states x 256], -2 unknown
  std::unordered_map<uint64_t, int32_t> memo_;     // (state << 8 | byte) -> state
  std::unordered_map<int32_t, int32_t> closure_memo_;
  // closure scratch
  std::vector<uint32_t> stamp_;
  uint32_t cur_stamp_ = 0;
  std::vector<int32_t> tmp_, work_;
  bool tmp_ended_ = false;
};

}  // namespace tern::constrain
