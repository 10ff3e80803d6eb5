// The element-wise and gather ops of the Llama family, forward and backward:
// SwiGLU (silu(gate) ⊙ up), the token embedding (a row gather; its backward a scatter-add) and RoPE
// (a rotation per pair of dims, so its backward is the rotation by the opposite angle).
#pragma once

#include <cstdint>
#include <vector>

#include "core/exec_context.h"

namespace tern::train {

// s[m, n] = silu(g) ⊙ u.
void swiglu_forward(ExecContext& ctx, const float* g, const float* u, int64_t m, int64_t n, float* s);
// dg, du [m, n] (written) from ds and the forward's g, u.
void swiglu_backward(ExecContext& ctx, const float* ds, const float* g, const float* u, int64_t m, int64_t n,
                     float* dg, float* du);

// x[m, hidden] = embed[ids[r]]; the ids were checked against the vocabulary by the caller.
void embedding_forward(ExecContext& ctx, const float* embed, int64_t hidden, const int32_t* ids, int64_t m, float* x);
// dembed[ids[r]] += dx[r] (serial: rows that share an id add into the same row).
void embedding_backward(const float* dx, int64_t hidden, const int32_t* ids, int64_t m, float* dembed);

// x: [m, n_heads, head_dim] rotated in place by position (Hugging Face rotate_half pairing), exactly
// as the inference op (ops/rope.h) computes it. rope_backward rotates a gradient by -position.
void rope_forward(ExecContext& ctx, float* x, int64_t m, int n_heads, int head_dim, const int32_t* positions,
                  const std::vector<float>& inv_freq);
void rope_backward(ExecContext& ctx, float* dx, int64_t m, int n_heads, int head_dim, const int32_t* positions,
                   const std::vector<float>& inv_freq, std::vector<int32_t>& neg_positions);

}  // namespace tern::train
