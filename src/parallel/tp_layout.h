// Megatron-style tensor parallelism: which slice of each weight one rank of T holds (pure
// arithmetic over the config, no weights). Per layer, rank r of T holds
//   q rows   [head0·hd, (head0 + heads)·hd)       heads = n_heads / T query heads
//   k, v rows [kv_head0·hd, (kv_head0 + kv_heads)·hd)   kv_heads = n_kv / T, or 1 replicated KV head
//                                                  when T > n_kv (T / n_kv ranks hold the same one, as vLLM)
//   o columns: the q rows' range                   (partial sums: one all-reduce after o)
//   gate, up rows / down columns: `inter`          (partial sums: one all-reduce after down)
//   lm_head rows: `vocab` (logits gathered to rank 0, `vocab_stride` rows per rank with padding)
// and its KV cache holds only its kv_heads. Norms and the embedding are replicated.
// Mixture-of-experts layers: the router is replicated; every routed expert's gate/up rows and down
// columns are cut by `expert_inter`, the shared expert's by `shared_inter` (as the dense FFN), so each
// rank's MoE output is a partial sum and the one all-reduce after the FFN completes it.
// Multi-head latent attention (DeepSeek): the `heads` query heads as above (q_b / q_proj and kv_b rows
// of those heads, o_proj columns of their values); q_a, kv_a and their norms are replicated, so every
// rank's KV cache holds the whole latent (c_kv | k_pe) of every token, as vLLM's does.
#pragma once

#include <cstdint>

#include "core/status.h"
#include "formats/model_config.h"

namespace tern {

struct TpRange {
  int64_t begin = 0, end = 0;
  int64_t size() const { return end - begin; }
};

// [p·n/parts, (p+1)·n/parts): contiguous parts whose sizes differ by at most one.
TpRange split_range(int64_t n, int parts, int p);

struct TpLayout {
  int rank = 0, size = 1;
  int heads = 0, head0 = 0;        // local query heads, first global one
  int kv_heads = 0, kv_head0 = 0;  // local KV heads, first global one
  bool kv_replicated = false;      // T > n_kv_heads: each rank holds one KV head shared with T / n_kv - 1 others
  TpRange inter;                   // intermediate (feed-forward) columns
  TpRange expert_inter;            // each routed expert's intermediate columns (MoE; empty otherwise)
  TpRange shared_inter;            // the shared expert's intermediate columns (empty: none)
  TpRange vocab;                   // LM head rows
  int64_t vocab_stride = 0;        // ceil(vocab / T): rows per rank in the padded logits gather
};

// Errors name the config field that does not divide (n_heads by T; n_kv_heads by T or T by n_kv_heads;
// for MLA only n_heads).
Result<TpLayout> tp_layout(const ModelConfig& cfg, int rank, int size);

// The config one rank's decoder runs: its heads, KV heads and intermediate columns (dense, routed
// and shared experts); hidden size, head_dim, MLA ranks, vocabulary and layers unchanged.
ModelConfig tp_local_config(const ModelConfig& cfg, const TpLayout& t);

}  // namespace tern
