// Causal grouped-query attention for training, forward and backward, flash-attention style: the
// forward keeps only the output and each row's log-sum-exp of the scaled scores; the backward
// recomputes every score row from Q, K and that log-sum-exp, so no [T, T] matrix per head is ever
// stored (memory O(T · head_dim) per thread).
//
// Layout: the batch is B packed sequences of T tokens, row r = b · T + t at position t.
//   q, o: [B·T, n_heads, head_dim]; k, v: [B·T, n_kv_heads, head_dim]; lse: [B·T, n_heads].
// Query head h reads KV head h / (n_heads / n_kv_heads) (Llama's repeat_kv).
// Work is split over (sequence, KV head) groups, so each group's dK / dV rows have one writer.
// An AVX2 build of the same loops is picked when ctx.cpu() has it; the plain build is the reference.
#pragma once

#include <cstdint>

#include "core/exec_context.h"

namespace tern::train {

struct AttentionShape {
  int64_t batch = 0, seq = 0;  // B, T
  int n_heads = 0, n_kv_heads = 0, head_dim = 0;
  float scale = 0.f;           // usually 1 / sqrt(head_dim)
};

void attention_forward(ExecContext& ctx, const AttentionShape& s, const float* q, const float* k, const float* v,
                       float* o, float* lse);

// dq [B·T, n_heads, d], dk, dv [B·T, n_kv_heads, d]: written.
void attention_backward(ExecContext& ctx, const AttentionShape& s, const float* q, const float* k, const float* v,
                        const float* o, const float* lse, const float* dout, float* dq, float* dk, float* dv);

}  // namespace tern::train
