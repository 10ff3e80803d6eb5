// Multi-head latent attention (DeepSeek MLA, absorbed form) of a ragged batch over a paged pool: each
// sequence's queries attend to its own cached latent rows, read through its block table. Causal;
// every head shares the one latent key row per position (see kernels/cpu/latent_attention_kernels.h).
//
//   q:   [total rows, n_heads, dk]   dk = kv_lora_rank + qk_rope_head_dim: (q_nope · W_UK | roped q_pe)
//   out: [total rows, n_heads, dv]   dv = kv_lora_rank: softmax-weighted sums of the latents
// Sequence s's query i sits at position pos0 + i and sees positions 0 .. pos0 + i, which must already
// be in the pool (the caller writes this step's latents first).
#pragma once

#include <vector>

#include "core/exec_context.h"
#include "kernels/cpu/latent_attention_kernels.h"
#include "ops/paged_attention.h"

namespace tern {

// Work lists reused from call to call (a step allocates nothing once they have grown).
struct LatentAttentionWorkspace {
  struct Item {
    int seq;
    cpu::LatentAttnWork w;
    int part;  // -1: writes out directly; else its split-K partial
  };
  struct Split {
    int seq, first_part, n_parts;
  };
  std::vector<cpu::LatentAttnParams> params;
  std::vector<Item> items;
  std::vector<Split> splits;
  std::vector<cpu::AttnPartial> parts;
};

// seqs: as for paged_attention (pos0, n_q, row0, block_table). scale: the softmax scale.
void latent_attention(ExecContext& ctx, int n_heads, float scale, const cpu::LatentKvLayer& kv,
                      const PagedAttnSeq* seqs, int n_seqs, const float* q, float* out, LatentAttentionWorkspace& ws);

// Which primitives latent_attention uses for these widths on ctx.cpu() (tests, logs).
const char* latent_attention_kernel_name(const ExecContext& ctx, int dk, int dv);

}  // namespace tern
