// Row-wise CPU kernels behind rms_norm, rope_apply, swiglu and embedding_lookup. One function per
// ISA level; the op front doors in src/ops pick one from ExecContext::cpu() and split rows over
// threads, so every kernel here works on a contiguous row range and is single-threaded.
#pragma once

#include <cstdint>

#include "core/dtype.h"

namespace tern::cpu {

// x, out: [m, d]; weight: [d]. If residual: x += residual first (x keeps the sum).
void rms_norm_scalar(float* x, const float* residual, int64_t m, int64_t d, const float* weight, float eps,
                     float* out);
void rms_norm_avx2(float* x, const float* residual, int64_t m, int64_t d, const float* weight, float eps,
                   float* out);

// x, out: [m, d]; weight, bias: [d] (bias may be null). If residual: x += residual first.
void layer_norm_scalar(float* x, const float* residual, int64_t m, int64_t d, const float* weight, const float* bias,
                       float eps, float* out);

// gate, up, out: [m·d] flattened (the op is elementwise).
void swiglu_scalar(const float* gate, const float* up, int64_t n, float* out);
void swiglu_avx2(const float* gate, const float* up, int64_t n, float* out);
void swiglu_avx512(const float* gate, const float* up, int64_t n, float* out);
// out = gelu_tanh(gate) * up, and out = gelu_tanh(x) (torch's approximate="tanh" GELU).
void geglu_tanh_scalar(const float* gate, const float* up, int64_t n, float* out);
void gelu_tanh_scalar(const float* x, int64_t n, float* out);

// x: [m, n_heads, head_dim] rotated in place. cos_sin: per-thread scratch of 2·half floats, where
// half = number of inv_freq entries (rotary_dim / 2 <= head_dim / 2).
void rope_scalar(float* x, int64_t m, int n_heads, int head_dim, const int32_t* positions, const float* inv_freq,
                 int half, float* cos_sin);
void rope_avx2(float* x, int64_t m, int n_heads, int head_dim, const int32_t* positions, const float* inv_freq,
               int half, float* cos_sin);
// The same over interleaved pairs (2i, 2i + 1) of the first 2·half dims (GLM-4).
void rope_interleaved_scalar(float* x, int64_t m, int n_heads, int head_dim, const int32_t* positions,
                             const float* inv_freq, int half, float* cos_sin);

// One table row per id: out[i, :] = table[ids[i], :] (table: [vocab, d] in dtype).
void embedding_scalar(const void* table, DType dtype, int64_t d, const int32_t* ids, int64_t m, float* out);
void embedding_avx2(const void* table, DType dtype, int64_t d, const int32_t* ids, int64_t m, float* out);

// Vectorised exp used by swiglu; exposed so tests can measure its accuracy over the whole range.
void exp_avx2_array(const float* x, int64_t n, float* out);
void exp_avx512_array(const float* x, int64_t n, float* out);

}  // namespace tern::cpu
