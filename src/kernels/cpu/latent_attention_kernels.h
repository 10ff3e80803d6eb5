// Multi-head latent attention (MLA, absorbed form) over a paged pool, on the CPU. Every head attends to
// the same key rows, so it is multi-query attention with wide heads:
//   q:   [n_q, n_heads, dk]   dk = kv_lora_rank + qk_rope_head_dim (q_nope·W_UK | roped q_pe)
//   key: [dk] per position    (normed c_kv | roped k_pe), as the pool stores it
//   val: the key's first dv = kv_lora_rank values (the same bytes, read again)
//   out: [n_q, n_heads, dv]   softmax(scale · q·keyᵀ) · val, still in latent space
// The online-softmax primitives (scores, softmax, pv) are the ones of attention_kernels.h; only the
// driver differs: K and V tiles are one tile, and the query and output widths differ.
#pragma once

#include <cstddef>
#include <cstdint>

#include "kernels/cpu/attention_kernels.h"
#include "kernels/cpu/kv_codec.h"

namespace tern::cpu {

// One latent layer of the pool: block b's rows start at data + b·block_stride, [block_size, dk]
// elements of codec.dtype; when codec.scaled, the f32 scales [block_size] follow at + scale_offset.
struct LatentKvLayer {
  const uint8_t* data = nullptr;
  size_t block_stride = 0;
  size_t scale_offset = 0;
  int block_size = 0;
  int dk = 0, dv = 0;
  KvRowCodec codec{};
};

struct LatentAttnParams {
  int n_heads = 0;
  float scale = 0.f;
  const float* q = nullptr;  // [n_q, n_heads, dk]
  int64_t n_q = 0, q_pos0 = 0;
  float* out = nullptr;      // [n_q, n_heads, dv]
  const LatentKvLayer* kv = nullptr;
  const int32_t* block_table = nullptr;  // positions 0 .. q_pos0 + n_q - 1
};

// Queries [i0, i1) (all heads) against the keys in [t_lo, t_hi) clipped to causality.
struct LatentAttnWork {
  int64_t i0 = 0, i1 = 0;
  int64_t t_lo = 0, t_hi = INT64_MAX;
};

size_t latent_attention_scratch_bytes(int rows, int dk, int dv);

// Computes a work item (rows = (i1 - i0) · n_heads); writes normalised rows of p.out, or, with
// `partial`, the unnormalised o [rows, dv], m and l for attention_merge-style combination.
void latent_attention_block(const AttentionKernels& kr, const LatentAttnParams& p, const LatentAttnWork& w,
                            void* scratch, const AttnPartial* partial = nullptr);

// out rows of w = Σ o_c·exp(m_c - M) / Σ l_c·exp(m_c - M) over the parts.
void latent_attention_merge(const LatentAttnParams& p, const LatentAttnWork& w, const AttnPartial* parts,
                            int n_parts);

}  // namespace tern::cpu
