// The K/V of one sequence, as a one-sequence paged cache: its own PagedKvCache whose block table
// is the identity (block i holds positions i·kBlockSize ..). The Decoder runs the same paged forward
// for it as for a served batch. Blocks are added on demand (doubling, up to max_tokens), so asking
// for a long limit costs nothing until the tokens exist. f32 by default: the parity tests compare
// logits with transformers' fp32 at 1e-4.
#pragma once

#include <cstdint>
#include <vector>

#include "core/kv_dtype.h"
#include "core/status.h"
#include "formats/model_config.h"
#include "kv/paged_kv_cache.h"

namespace tern {

class SequenceKvCache {
 public:
  // A whole key tile (64) per block: f32 tiles are then read in place, never copied.
  static constexpr int kBlockSize = 64;

  SequenceKvCache(const ModelConfig& cfg, int64_t max_tokens, KvDType dtype = KvDType::F32);

  // Makes room for `tokens` positions (error past max_tokens).
  Status reserve(int64_t tokens);

  PagedKvCache& pool() { return pool_; }
  const PagedKvCache& pool() const { return pool_; }
  const int32_t* block_table() const { return table_.data(); }
  int64_t n_blocks() const { return int64_t(table_.size()); }
  int64_t capacity() const { return max_tokens_; }
  int64_t length() const { return length_; }
  void set_length(int64_t n) { length_ = n; }
  size_t bytes() const { return pool_.bytes(); }

 private:
  PagedKvCache pool_;
  std::vector<int32_t> table_;
  int64_t max_tokens_;
  int64_t length_ = 0;
};

}  // namespace tern
