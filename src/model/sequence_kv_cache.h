// The K/V of one sequence, contiguous per layer: k(layer), v(layer) are [capacity, n_kv_heads, head_dim]
// f32, row t holding position t. The serving engine replaces this with paged blocks.
#pragma once

#include <cstdint>
#include <vector>

#include "model/model_config.h"

namespace tern {

class SequenceKvCache {
 public:
  SequenceKvCache(const ModelConfig& cfg, int64_t capacity);

  float* k(int layer) { return k_[size_t(layer)].data(); }
  float* v(int layer) { return v_[size_t(layer)].data(); }
  int64_t row_floats() const { return row_; }  // n_kv_heads * head_dim
  int64_t capacity() const { return capacity_; }
  int64_t length() const { return length_; }
  void set_length(int64_t n) { length_ = n; }
  size_t bytes() const { return size_t(2) * k_.size() * size_t(capacity_ * row_) * sizeof(float); }

 private:
  int64_t row_;
  int64_t capacity_;
  int64_t length_ = 0;
  std::vector<std::vector<float>> k_, v_;
};

}  // namespace tern
