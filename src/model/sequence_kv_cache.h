// The K/V of one sequence, contiguous per layer: k(layer), v(layer) are [allocated, n_kv_heads, head_dim]
// f32, row t holding position t. Storage grows on demand (doubling, up to max_tokens), so asking for a
// long limit costs nothing until the tokens exist. The serving engine replaces this with paged blocks.
#pragma once

#include <cstdint>
#include <vector>

#include "core/status.h"
#include "model/model_config.h"

namespace tern {

class SequenceKvCache {
 public:
  SequenceKvCache(const ModelConfig& cfg, int64_t max_tokens);

  // Makes room for `tokens` rows (error past max_tokens); pointers from k()/v() may change.
  Status reserve(int64_t tokens);

  float* k(int layer) { return k_[size_t(layer)].data(); }
  float* v(int layer) { return v_[size_t(layer)].data(); }
  int64_t row_floats() const { return row_; }  // n_kv_heads * head_dim
  int64_t capacity() const { return max_tokens_; }
  int64_t length() const { return length_; }
  void set_length(int64_t n) { length_ = n; }
  size_t bytes() const { return size_t(2) * k_.size() * size_t(allocated_ * row_) * sizeof(float); }

 private:
  int64_t row_;
  int64_t max_tokens_;
  int64_t allocated_ = 0;
  int64_t length_ = 0;
  std::vector<std::vector<float>> k_, v_;
};

}  // namespace tern
