// The paged KV store: one pool of fixed-size blocks, each holding block_size token slots of every
// layer's K and V. Which block holds which tokens of which sequence is the caller's business (the
// engine's block manager, or SequenceKvCache's identity table); the cache only stores and decodes.
//
// Block layout (block-major, so a block is one contiguous kv_block_bytes() run and the pool can grow
// without moving tokens between blocks): layer after layer, the layer's K part then its V part, each
//   data   [block_size, kv_heads, dim] of dtype (f32, bf16, int8, fp8-e4m3)
//   scales [block_size, kv_heads] f32        (int8 / fp8 only)
// padded to 64 bytes. kv_heads and the K / V widths come from the architecture (kv/kv_layout.h): an
// MLA layer has one part only, [block_size, 1, kv_lora_rank + qk_rope_head_dim], whose first
// kv_lora_rank values are also the value. At block sizes that are multiples of 16 the padding is nil
// for every width that is a multiple of 4, so a block is block_size × the bytes per token exactly. Scales are per (token slot, kv head): a token is quantized once, when it is
// appended, from its own range, so no later token can force an earlier one to be requantized (a
// per-block scale would); it costs 4 bytes per head_dim values (6% at head_dim 64 for int8).
#pragma once

#include <cstdint>
#include <cstdlib>
#include <memory>
#include <vector>

#include "core/cpu_features.h"
#include "core/kv_dtype.h"
#include "core/status.h"
#include "kernels/cpu/attention_kernels.h"
#include "kernels/cpu/latent_attention_kernels.h"
#include "formats/model_config.h"
#include "kv/kv_layout.h"

namespace tern {

class PagedKvCache {
 public:
  PagedKvCache(const ModelConfig& cfg, int block_size, KvDType dtype);

  // Exact bytes of one block over all layers, K and V, scales and padding included.
  static size_t block_bytes_for(const ModelConfig& cfg, int block_size, KvDType dtype);

  // Makes the pool num_blocks blocks; existing blocks keep their content (growing only).
  Status allocate(int64_t num_blocks);

  // k: [n, kv_heads * k_dim], v: [n, kv_heads * v_dim] f32 — layer `layer`'s K/V of positions
  // pos0 .. pos0 + n - 1 of the sequence whose blocks are block_table; stored (quantized) into their
  // slots. A latent layer (shape(layer).v_in_k) takes its rows [n, kv_lora_rank + qk_rope] as k; v is
  // not read (pass nullptr).
  void write(const CpuFeatures& cpu, int layer, const int32_t* block_table, int64_t pos0, int64_t n, const float* k,
             const float* v);

  // What the attention kernels read for one K/V layer (the codec picks decoders for `cpu`).
  cpu::PagedKvLayer layer(int layer, const CpuFeatures& cpu) const;
  // The same for a latent (MLA) layer.
  cpu::LatentKvLayer latent_layer(int layer, const CpuFeatures& cpu) const;

  // Decodes the K (or V) row of (position, kv head) to f32 [shape(layer).k_dim or v_dim] — tests and tools.
  void read_row(int layer, bool value, const int32_t* block_table, int64_t pos, int kv_head, float* out) const;

  const KvLayerShape& shape(int layer) const { return layers_[size_t(layer)].shape; }
  // Bytes one token slot takes over all layers (scales included; block padding not).
  size_t bytes_per_token() const;

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
  // One stored part (a layer's K, or its V): [block_size, kv_heads, dim] then the scales.
  struct Part {
    size_t offset = 0;        // from the start of a block
    size_t scale_offset = 0;  // from the start of the part
    int dim = 0;
  };
  struct Layer {
    KvLayerShape shape;
    Part k, v;  // v == k for a latent layer
  };
  uint8_t* row_ptr(const Part& part, int kv_heads, const int32_t* block_table, int64_t pos, int kv_head,
                   float** scale) const;

  int n_layers_, block_size_;
  KvDType dtype_;
  size_t elem_bytes_, block_bytes_;
  std::vector<Layer> layers_;
  int64_t num_blocks_ = 0;
  std::unique_ptr<uint8_t, FreeDeleter> data_;
};

}  // namespace tern
