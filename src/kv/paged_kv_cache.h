// The paged KV store: one pool of fixed-size blocks, each holding block_size token slots of every
// layer's K and V. Which block holds which tokens of which sequence is the caller's business (the
// engine's block manager, or SequenceKvCache's identity table); the cache only stores and decodes.
//
// Block layout (block-major, so a block is one contiguous kv_block_bytes() run and the pool can grow
// without moving tokens between blocks): for layer l, part 2l is K and part 2l+1 is V, each
//   data   [block_size, n_kv_heads, head_dim] of dtype (f32, bf16, int8, fp8-e4m3)
//   scales [block_size, n_kv_heads] f32        (int8 / fp8 only)
// padded to 64 bytes. Scales are per (token slot, kv head): a token is quantized once, when it is
// appended, from its own range, so no later token can force an earlier one to be requantized (a
// per-block scale would); it costs 4 bytes per head_dim values (6% at head_dim 64 for int8).
#pragma once

#include <cstdint>
#include <cstdlib>
#include <memory>

#include "core/cpu_features.h"
#include "core/kv_dtype.h"
#include "core/status.h"
#include "kernels/cpu/attention_kernels.h"
#include "formats/model_config.h"

namespace tern {

class PagedKvCache {
 public:
  PagedKvCache(const ModelConfig& cfg, int block_size, KvDType dtype);

  // Exact bytes of one block over all layers, K and V, scales and padding included.
  static size_t block_bytes_for(const ModelConfig& cfg, int block_size, KvDType dtype);

  // Makes the pool num_blocks blocks; existing blocks keep their content (growing only).
  Status allocate(int64_t num_blocks);

  // k, v: [n, n_kv_heads * head_dim] f32 — layer `layer`'s K/V of positions pos0 .. pos0 + n - 1 of
  // the sequence whose blocks are block_table; stored (quantized) into their slots.
  void write(const CpuFeatures& cpu, int layer, const int32_t* block_table, int64_t pos0, int64_t n, const float* k,
             const float* v);

  // What the attention kernels read for one layer (the codec picks decoders for `cpu`).
  cpu::PagedKvLayer layer(int layer, const CpuFeatures& cpu) const;

  // Decodes the K (or V) row of (position, kv head) to f32 [head_dim] — tests and tools.
  void read_row(int layer, bool value, const int32_t* block_table, int64_t pos, int kv_head, float* out) const;

  int64_t num_blocks() const { return num_blocks_; }
  int block_size() const { return block_size_; }
  KvDType dtype() const { return dtype_; }
  size_t block_bytes() const { return block_bytes_; }
  size_t bytes() const { return size_t(num_blocks_) * block_bytes_; }
  int n_layers() const { return n_layers_; }

 private:
  struct FreeDeleter {
    void operator()(uint8_t* p) const { std::free(p); }
  };
  uint8_t* row_ptr(int layer, bool value, const int32_t* block_table, int64_t pos, int kv_head, float** scale) const;

  int n_layers_, n_kv_heads_, head_dim_, block_size_;
  KvDType dtype_;
  size_t elem_bytes_, scale_offset_, part_bytes_, block_bytes_;
  int64_t num_blocks_ = 0;
  std::unique_ptr<uint8_t, FreeDeleter> data_;
};

}  // namespace tern
