// Attention block: grouped-query self-attention over the paged KV pool.
//   q = xn·Wqᵀ (+bq), k, v likewise → optional per-head RMSNorm of q, k → rotary embedding (all or
//   the first rotary_dim dims of each head, half-split or interleaved pairs, or none) → K/V written
//   into the pool → softmax(scale · q·kᵀ, optional tanh soft-capping, causal, optional sliding
//   window) · v → out = attn·Woᵀ (+bo).
// Every variation is a field of AttentionWeights, chosen when the weights are bound.
#pragma once

#include <vector>

#include "core/scratch_vector.h"
#include "core/exec_context.h"
#include "core/weight_matrix.h"
#include "formats/model_config.h"
#include "kv/paged_kv_cache.h"
#include "model/blocks/block_step.h"
#include "model/blocks/norm.h"
#include "ops/paged_attention.h"
#include "ops/rope.h"

namespace tern {

struct AttentionWeights {
  WeightMatrix q, k, v, o;  // q: [n_heads*hd, hidden], k/v: [n_kv*hd, hidden], o: [hidden, n_heads*hd]
  std::vector<float> q_bias, k_bias, v_bias;  // [n_heads*hd], [n_kv*hd] (qwen2, gpt2); empty = none
  std::vector<float> o_bias;                  // [hidden] (gpt2 c_proj); empty = none
  NormWeights q_norm, k_norm;                 // RMSNorm over each head, [hd] (qwen3); absent = none
  RopeLayout rope = RopeLayout::kHalf;        // kNone: positions enter elsewhere (gpt2's wpe)
  float scale = 0.f;                          // score scale; 0 = 1/sqrt(head_dim)
  float softcap = 0.f;                        // scores → tanh(s / softcap) · softcap (gemma2); 0 = off
  int sliding_window = 0;                     // 0 = full causal
};

class AttentionBlock {
 public:
  // Activations for up to max_rows token rows.
  AttentionBlock(const ModelConfig& cfg, int64_t max_rows);

  // xn: [rows, hidden], the normed input (an observer may rewrite it); out: [rows, hidden].
  // inv_freq: [rotary_dim / 2]. Writes this chunk's K/V of layer step.layer into kv.
  void forward(ExecContext& ctx, PagedKvCache& kv, const AttentionWeights& w, const std::vector<float>& inv_freq,
               const BlockStep& step, float* xn, float* out);

 private:
  int64_t hidden_;
  int n_heads_, n_kv_heads_, head_dim_;
  ScratchVector<float> q_;      // [rows, n_heads * hd]
  ScratchVector<float> k_new_;  // [rows, n_kv * hd] this chunk's keys, f32 before storing
  ScratchVector<float> v_new_;  // [rows, n_kv * hd]
  ScratchVector<float> attn_;   // [rows, n_heads * hd]
  PagedAttentionWorkspace ws_;
};

}  // namespace tern
