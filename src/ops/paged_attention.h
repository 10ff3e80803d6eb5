// Attention of a ragged batch over a paged KV pool: each sequence's queries (a prompt chunk or one
// decode token) attend to its own cached keys, read through its block table. Same semantics as
// ops/attention.h (causal, GQA, sliding window, softcap) and the same tiled online-softmax kernels;
// decode reads the pool's rows in place (bf16, f32, int8, fp8 widened in registers): the
// whole-item KvDecodeJob kernels walk a sequence's blocks once, serving every kv head per run of
// 16 keys with the scores kept in registers (the KvTileKernels take head_dims those do not), and
// prompt chunks decode each K/V tile to f32 once for all of their rows.
//
//   q:   [total rows, n_heads, head_dim]   rows of sequence s are row0 .. row0 + n_q - 1
//   out: [total rows, n_heads, head_dim]
// Sequence s's query i sits at position pos0 + i and sees its positions 0 .. pos0 + i, which must
// already be in the pool (the caller writes this step's K/V before calling).
#pragma once

#include <cstdint>
#include <vector>

#include "kernels/cpu/attention_kernels.h"
#include "ops/attention.h"
#include "core/exec_context.h"

namespace tern {

struct PagedAttnSeq {
  int64_t pos0 = 0;
  int64_t n_q = 0;
  int64_t row0 = 0;                     // first row of this sequence in q / out
  const int32_t* block_table = nullptr; // covers positions 0 .. pos0 + n_q - 1
};

// Work lists reused from call to call so a step allocates nothing once they have grown.
struct PagedAttentionWorkspace {
  struct Item {
    int seq;
    cpu::AttnWork w;
    int part;  // -1: writes out directly; else index of its split-K partial
  };
  struct Split {
    int seq, first_part, n_parts;
  };
  std::vector<cpu::AttnParams> params;
  std::vector<Item> items;
  std::vector<Split> splits;
  std::vector<cpu::AttnPartial> parts;
};

void paged_attention(ExecContext& ctx, const AttentionShape& shape, const cpu::PagedKvLayer& kv,
                     const PagedAttnSeq* seqs, int n_seqs, const float* q, float* out, PagedAttentionWorkspace& ws);

}  // namespace tern
