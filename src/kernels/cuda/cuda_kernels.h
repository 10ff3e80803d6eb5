// Host launchers of tern's own CUDA kernels (src/kernels/cuda/*.cu). Every pointer is a device
// pointer; every launcher only enqueues on `stream` and returns the launch error (no sync, no
// allocation), so a sequence of them can be captured into a CUDA graph.
// Activations are f32 (the CPU path's numerics); weights and the KV cache are bf16 or quantized.
// Shapes are checked by the caller (backend/cuda); kernels trust them.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

namespace tern::cuda {

// Storage dtype of a dense table (matches tern::DType F32/F16/BF16 by meaning, not by value).
enum class DenseType : int { F32 = 0, F16 = 1, BF16 = 2 };

// x, out: [m, d]. With residual: x += residual first (x is updated), then out = rmsnorm(x) * w.
cudaError_t rms_norm(float* x, const float* residual, int64_t m, int64_t d, const float* w, float eps, float* out,
                     cudaStream_t s);
// (qwen3 q/k norm is the same call over [m * heads, head_dim] rows.)
// x: [m, n_heads, head_dim] rotated in place (rotate-half pairs j, j + rot/2); positions: [m];
// inv_freq: [rotary_dim / 2] from tern::rope_inv_freq (llama3 scaling already folded in).
cudaError_t rope(float* x, int64_t m, int n_heads, int head_dim, int rotary_dim, const int32_t* positions,
                 const float* inv_freq, cudaStream_t s);
// out = silu(gate) * up, all [n]; out may alias gate or up.
cudaError_t swiglu(const float* gate, const float* up, int64_t n, float* out, cudaStream_t s);
// out[i, :] = table[ids[i], :] as f32. table: [vocab, d] of `type`.
cudaError_t embedding(const void* table, DenseType type, const int32_t* ids, int64_t m, int64_t d, float* out,
                      cudaStream_t s);
// x[i, j] += bias[j]; x: [m, n].
cudaError_t add_bias(float* x, const float* bias, int64_t m, int64_t n, cudaStream_t s);
// x += y, both [n].
cudaError_t add_inplace(float* x, const float* y, int64_t n, cudaStream_t s);
// dense [n] f32/f16 -> bf16 (activations for cuBLASLt, weights at upload time).
cudaError_t to_bf16(const void* in, DenseType type, int64_t n, uint16_t* out, cudaStream_t s);
// out[i] = rows[idx[i], :] for i < r; rows: [*, d].
cudaError_t gather_rows(const float* rows, const int32_t* idx, int64_t r, int64_t d, float* out, cudaStream_t s);
// out[i] = argmax_j logits[i, j] (lowest index on ties, like the CPU greedy sampler); logits: [m, n].
cudaError_t argmax_rows(const float* logits, int64_t m, int64_t n, int32_t* out, cudaStream_t s);

// ---- GEMV for decode: y[b, n] = x[b, :] · W[n, :] (+ bias), b = 1..8, x and y f32 ----
struct GemvWeight {
  enum Kind : int { BF16 = 0, INT8 = 1, INT4 = 2, FP8 = 3 } kind = BF16;
  const void* data = nullptr;     // BF16: [n, k] bf16; INT8/FP8: [n, k] bytes; INT4: [n, k/2] (see quant_kernels.h)
  const float* scales = nullptr;  // INT8/FP8: [n]; INT4: [n, k/group]
  const float* zeros = nullptr;   // INT4 asymmetric: [n, k/group]; null = symmetric (zero 8)
  int group = 0;
  int64_t n = 0, k = 0;           // k % 32 == 0 for INT4, k % 8 == 0 for all
};
cudaError_t gemv(const GemvWeight& w, const float* x, int64_t batch, const float* bias, float* y, cudaStream_t s);

// ---- paged KV cache (bf16), one layer: k_cache/v_cache [num_blocks, block_size, n_kv, hd] ----
struct PagedKv {
  uint16_t* k = nullptr;
  uint16_t* v = nullptr;
  int block_size = 16;
  int n_kv_heads = 0;
  int head_dim = 0;
};
// Ragged step description on the device (backend/cuda/step_pack.h builds it on the host).
struct StepTokens {
  const int32_t* pos = nullptr;           // [T] absolute position of each new token
  const int32_t* seq = nullptr;           // [T] which sequence the token belongs to
  const int32_t* block_tables = nullptr;  // [n_seqs, max_blocks]; -1 = padding (graph buckets)
  int max_blocks = 0;
  int64_t n_tokens = 0;
};
// Writes k, v: [T, n_kv, hd] f32 into the pages of each token's position (skips block id < 0).
cudaError_t kv_write(const PagedKv& kv, const StepTokens& st, const float* k, const float* v, cudaStream_t s);
// Causal paged attention of every new token over its sequence's cache (positions <= own position,
// within `window` when > 0). q: [T, n_heads, hd], out: [T, n_heads, hd]. The key range of each
// (token, head) is split into n_splits parts (flash-decoding); partial: [T, n_heads, n_splits, hd + 2]
// workspace. n_splits = 1 is plain flash attention (prefill chunks).
cudaError_t paged_attention(const PagedKv& kv, const StepTokens& st, const float* q, int n_heads, int window,
                            float scale, int n_splits, float* partial, float* out, cudaStream_t s);

}  // namespace tern::cuda
