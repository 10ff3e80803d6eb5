// Causal grouped-query attention over a contiguous per-sequence KV cache, computed as a tiled
// online-softmax (flash-attention) kernel: memory stays O(tile), never O(n²).
//
//   q:   [n_q, n_heads, head_dim]      queries for positions q_pos0 .. q_pos0 + n_q - 1
//   k,v: [n_kv, n_kv_heads, head_dim]  row t holds the key/value of position t (n_kv >= q_pos0 + n_q)
//   out: [n_q, n_heads, head_dim]
// Query head h reads kv head h / (n_heads / n_kv_heads). Query at position p sees keys t <= p, and
// with sliding_window W > 0 only keys with p - t < W (transformers' Mistral semantics).
#pragma once

#include <cstdint>

#include "core/exec_context.h"

namespace tern {

struct AttentionShape {
  int n_heads = 0;
  int n_kv_heads = 0;
  int head_dim = 0;
  float scale = 0.f;       // usually 1/sqrt(head_dim)
  int sliding_window = 0;  // 0 = full causal
  float softcap = 0.f;     // 0 = off (gemma2-style logit soft-capping)
};

void attention(ExecContext& ctx, const AttentionShape& shape, const float* q, int64_t n_q, int64_t q_pos0,
               const float* k, const float* v, int64_t n_kv, float* out);

}  // namespace tern
