// Device memory of a CudaModelRunner is taken in two cudaMalloc calls, both before the step loop:
// weights + workspace when the runner is built, the KV pool (+ its block-table matrix) in
// allocate_kv. This file lays those regions out on the host (offsets, 256-byte aligned) so that the
// sizing is unit-tested without a GPU and a model that does not fit fails with a Status up front.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "core/status.h"
#include "formats/model_config.h"

namespace tern::cuda {

// Bump allocator over offsets (no memory behind it).
class ArenaPlan {
 public:
  static constexpr size_t kAlign = 256;  // cuBLASLt and 16-byte vector loads want at least this
  size_t add(size_t bytes) {
    const size_t off = (total_ + kAlign - 1) / kAlign * kAlign;
    total_ = off + bytes;
    return off;
  }
  size_t total() const { return (total_ + kAlign - 1) / kAlign * kAlign; }

 private:
  size_t total_ = 0;
};

struct WorkspaceSpec {
  int64_t max_tokens = 512;      // rows per step (prefill chunk + decode tokens)
  int64_t max_logit_rows = 256;
  int max_splits = 64;           // flash-decoding splits
  size_t gemm_workspace = size_t(32) << 20;  // cuBLASLt
};

// Offsets (bytes) of the step buffers inside the workspace region. T = max_tokens, R = logit rows.
struct WorkspaceLayout {
  size_t ids = 0, pos = 0, seq = 0, logit_rows = 0, argmax = 0;  // int32 [T], [T], [T], [R], [R]
  size_t x = 0, xn = 0;            // f32 [T, hidden]: residual stream, normed input
  size_t q = 0, k = 0, v = 0;      // f32 [T, nh*hd], [T, nkv*hd] x2
  size_t attn = 0;                 // f32 [T, nh*hd]
  size_t gate = 0, up = 0;         // f32 [T, inter]
  size_t act_bf16 = 0;             // bf16 [T, max(hidden, inter, nh*hd)] GEMM input
  size_t partial = 0;              // f32 [partial_units, hd + 2] flash-decoding partials
  int64_t partial_units = 0;       // (token, head, split) triples that fit: max(T, splits) * nh + 4096
  size_t sel = 0;                  // f32 [R, hidden]
  size_t logits = 0;               // f32 [R, vocab]
  size_t gemm = 0;                 // cuBLASLt workspace
  size_t total = 0;
};

WorkspaceLayout plan_workspace(const ModelConfig& cfg, const WorkspaceSpec& spec);

// bf16 KV: K and V of every layer, block_size slots of n_kv * head_dim each.
size_t cuda_kv_block_bytes(const ModelConfig& cfg, int block_size);

// "needs X GiB of device memory, Y GiB free" when need > free_bytes.
Status check_fits(const std::string& what, size_t need, size_t free_bytes);

}  // namespace tern::cuda
