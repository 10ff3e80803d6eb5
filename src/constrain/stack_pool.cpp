#include "constrain/stack_pool.h"

#include <algorithm>
#include <cstring>

namespace tern::constrain {

int32_t StackPool::frame(int32_t node, int32_t parent) {
  const uint64_t key = (uint64_t(uint32_t(node)) << 32) | uint32_t(parent);
  auto [it, fresh] = frame_ids_.emplace(key, int32_t(frames_.size()));
  if (fresh) frames_.push_back({node, parent});
  return it->second;
}

int32_t StackPool::intern_tmp() {
  if (tmp_.empty() && !tmp_ended_) return kDead;
  std::sort(tmp_.begin(), tmp_.end());
  tmp_.erase(std::unique(tmp_.begin(), tmp_.end()), tmp_.end());
  std::string key(reinterpret_cast<const char*>(tmp_.data()), tmp_.size() * sizeof(int32_t));
  key += char(tmp_ended_);
  auto [it, fresh] = state_ids_.emplace(std::move(key), int32_t(states_.size()));
  if (fresh) {
    states_.push_back({uint32_t(flat_.size()), uint32_t(flat_.size() + tmp_.size()), tmp_ended_});
    flat_.insert(flat_.end(), tmp_.begin(), tmp_.end());
    if (dense_) dense_memo_.resize(dense_memo_.size() + 256, -2);
  }
  return it->second;
}

int32_t StackPool::single(int32_t node) {
  tmp_.assign(1, frame(node, -1));
  tmp_ended_ = false;
  return intern_tmp();
}

// Expands calls (push the return frame, enter the callee), rule ends (pop) and keeps byte-consuming stacks.
void StackPool::closure_into(int32_t start) {
  work_.assign(1, start);
  while (!work_.empty()) {
    const int32_t f = work_.back();
    work_.pop_back();
    if (size_t(f) >= stamp_.size()) stamp_.resize(frames_.size() + 64, 0);
    if (stamp_[size_t(f)] == cur_stamp_) continue;
    stamp_[size_t(f)] = cur_stamp_;
    const Frame fr = frames_[size_t(f)];
    const Node& n = g_.nodes[size_t(fr.node)];
    if (n.edge_end > n.edge_begin) tmp_.push_back(f);
    for (uint32_t c = n.call_begin; c < n.call_end; ++c) {
      const CallEdge& ce = g_.calls[c];
      const int32_t ret = g_.nodes[size_t(ce.ret)].pure_return ? fr.parent : frame(ce.ret, fr.parent);
      work_.push_back(frame(g_.rule_start[size_t(ce.rule)], ret));
    }
    if (n.final) {
      if (fr.parent < 0) tmp_ended_ = true;
      else work_.push_back(fr.parent);
    }
  }
}

int32_t StackPool::closure_of(int32_t f) {
  auto it = closure_memo_.find(f);
  if (it != closure_memo_.end()) return it->second;
  ++cur_stamp_;
  tmp_.clear();
  tmp_ended_ = false;
  closure_into(f);
  const int32_t s = intern_tmp();
  closure_memo_.emplace(f, s);
  return s;
}

int32_t StackPool::step(int32_t state, uint8_t byte) {
  if (dense_) {
    const int32_t m = dense_memo_[size_t(state) * 256 + byte];
    if (m != -2) return m;
  } else {
    auto it = memo_.find((uint64_t(uint32_t(state)) << 8) | byte);
    if (it != memo_.end()) return it->second;
  }
  ++cur_stamp_;
  tmp_.clear();
  tmp_ended_ = false;
  const State st = states_[size_t(state)];
  for (uint32_t i = st.begin; i < st.end; ++i) {
    const Frame fr = frames_[size_t(flat_[i])];
    const int32_t to = g_.next(fr.node, byte);
    if (to >= 0) closure_into(frame(to, fr.parent));
  }
  const int32_t out = intern_tmp();
  if (dense_) dense_memo_[size_t(state) * 256 + byte] = out;
  else memo_.emplace((uint64_t(uint32_t(state)) << 8) | byte, out);
  return out;
}

}  // namespace tern::constrain
