// Multi-head latent attention (DeepSeek-V2/V3), the block. Shapes (H heads, R = kv_lora_rank,
// P = qk_rope_head_dim, N = qk_nope_head_dim, V = v_head_dim):
//
//   q      = q_b(rms(q_a(x))) or q_proj(x)            [c, H, N + P]  = (q_nope | q_pe)
//   kv_a(x)                                            [c, R + P]     = (c_kv | k_pe)
//   c_kv   = rms(c_kv) (kv_a_layernorm)                k_pe: one rope key shared by all heads
//   rope(q_pe), rope(k_pe)                             (de-interleaved first when rope_interleave)
//   pool  <- (c_kv | k_pe)                             R + P values per token: nothing per head
//   q_abs  = (q_nope[h] · W_UK[h] | q_pe[h])           [c, H, R + P]   W_UK[h] = kv_b rows of head h's k_nope, [N, R]
//   a_lat  = softmax(scale · q_abs · (c_kv | k_pe)ᵀ) · c_kv      [c, H, R]  (ops/latent_attention)
//   attn   = a_lat[h] · W_UV[h]ᵀ                       [c, H, V]       W_UV[h] = kv_b rows of head h's v, [V, R]
//   out    = attn · o_projᵀ                            [c, hidden]
//
// This is the "absorbed" form: q_nope·k_nope = q_nope·(W_UK c_kv) = (q_nope W_UK)·c_kv, and the
// weighted sum of values Σ p·(W_UV c_kv) = W_UV Σ p·c_kv, so attention reads only the latent rows.
// Prefill uses it too (one path for prompt chunks, decode tokens and ragged mixes of both, and a prompt
// chunk after a prefix-cache hit needs no re-expansion of the cached prefix); its cost per query and key
// is R + P multiply-adds per head instead of N + P (+ V), which matters only for long prompts.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/scratch_vector.h"
#include "core/exec_context.h"
#include "core/status.h"
#include "core/weight_matrix.h"
#include "formats/model_config.h"
#include "kv/paged_kv_cache.h"
#include "model/blocks/block_step.h"
#include "ops/latent_attention.h"

namespace tern {

class WeightBinder;

struct MlaWeights {
  WeightMatrix q;                  // q_proj [H·(N+P), hidden] when q_lora_rank is null
  WeightMatrix q_a;                // q_a_proj [q_lora_rank, hidden]
  std::vector<float> q_a_norm;     // [q_lora_rank]
  WeightMatrix q_b;                // q_b_proj [H·(N+P), q_lora_rank]
  WeightMatrix kv_a;               // kv_a_proj_with_mqa [R + P, hidden]
  std::vector<float> kv_a_norm;    // [R]
  WeightMatrix kv_b;               // kv_b_proj [H·(N+V), R]
  WeightMatrix o;                  // o_proj [hidden, H·V]
  std::vector<float> q_a_bias, kv_a_bias, o_bias;  // attention_bias (absent in DeepSeek-V3)
  // Absorption, made from kv_b at bind time (f32): 2·H·R·(N or V) floats per layer.
  std::vector<float> w_uk_t;       // [H, R, N]: W_UK[h]ᵀ, so q_nope · W_UK[h] is a row-major product
  std::vector<float> w_uv;         // [H, V, R]
};

// Binds `prefix` + q_a_proj / q_b_proj (or q_proj), kv_a_proj_with_mqa, kv_a_layernorm, kv_b_proj,
// o_proj (+ biases when attention_bias) and builds the absorbed matrices. kv_b_proj must be dense.
Status bind_mla_attention(WeightBinder& b, const ModelConfig& cfg, const std::string& prefix, MlaWeights* w);
// Fills w_uk_t and w_uv from the dense kv_b (bind does it; tests building weights by hand too).
void absorb_kv_b(const ModelConfig& cfg, MlaWeights* w);

// The forward of one layer over a chunk of c rows (up to max_rows), whose sequences are `seqs`
// (row ranges, positions, block tables, as ops/paged_attention). Owns its activations.
class MlaAttention {
 public:
  MlaAttention(const ModelConfig& cfg, int64_t max_rows);

  // xn: [rows, hidden], the normed input (an observer may rewrite it); out: [rows, hidden].
  // Writes this chunk's latent rows of layer step.layer into kv before attending.
  void forward(ExecContext& ctx, PagedKvCache& kv, const MlaWeights& w, const BlockStep& step, float* xn, float* out);

 private:
  int64_t hidden_, H_, R_, P_, N_, V_, q_rank_;
  float eps_, scale_, rope_factor_;
  bool interleave_;
  std::vector<float> inv_freq_;
  ScratchVector<float> qa_;     // [c, q_lora_rank]
  ScratchVector<float> q_;      // [c, H, N + P]
  ScratchVector<float> kv_;     // [c, R + P]   rows as stored: (normed c_kv | roped k_pe)
  ScratchVector<float> ckv_;    // [c, R]       c_kv while it is normed
  ScratchVector<float> qpe_;    // [c, H, P]    rope scratch
  ScratchVector<float> kpe_;    // [c, P]
  ScratchVector<float> qabs_;   // [c, H, R + P]
  ScratchVector<float> alat_;   // [c, H, R]
  ScratchVector<float> attn_;   // [c, H, V]
  LatentAttentionWorkspace ws_;
};

}  // namespace tern
