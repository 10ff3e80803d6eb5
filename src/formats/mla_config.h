// Multi-head latent attention (DeepSeek-V2/V3) fields of config.json. Part of ModelConfig (its `mla`
// member); parse_model_config calls parse_mla_config once, after the rope fields.
//
//   q = q_b_proj(rms(q_a_proj(x)))  or q_proj(x)           [n_heads, qk_nope + qk_rope]
//   kv_a_proj_with_mqa(x) = [c_kv (kv_lora_rank) | k_pe (qk_rope)]; c_kv normed by kv_a_layernorm
//   kv_b_proj(c_kv) = per head [k_nope (qk_nope) | v (v_head_dim)]
// The KV cache keeps the normed c_kv and the roped k_pe of each token (kv_lora_rank + qk_rope_head_dim
// values, shared by all heads).
#pragma once

#include <cstdint>

#include "core/status.h"

namespace tern {

class ConfigFields;
struct ModelConfig;

struct MlaConfig {
  int64_t q_lora_rank = 0;   // 0: q is one dense q_proj (q_lora_rank null)
  int64_t kv_lora_rank = 0;  // 0: not MLA
  int qk_nope_head_dim = 0;
  int qk_rope_head_dim = 0;  // also ModelConfig::head_dim and rope.rotary_dim, as transformers sets them
  int v_head_dim = 0;
  // Rope pairs are interleaved (2i, 2i+1) in q_pe / k_pe (DeepSeek's weights); false: rotate_half pairs.
  bool rope_interleave = true;
  // Softmax scale: qk_head_dim^-0.5, times yarn_get_mscale(factor, mscale_all_dim)² under yarn scaling.
  double softmax_scale = 0.0;
  // DeepSeek-V3's multi-token-prediction layers (num_nextn_predict_layers), stored after the decoder's
  // layers as model.layers.<n_layers + i>.*: training / speculative-decoding weights that decoding
  // does not use (the architecture file skips them by name).
  int nextn_predict_layers = 0;

  bool enabled() const { return kv_lora_rank > 0; }
  int qk_head_dim() const { return qk_nope_head_dim + qk_rope_head_dim; }
  // Values one token stores per layer: the latent and the shared rope key.
  int64_t kv_row() const { return kv_lora_rank + qk_rope_head_dim; }
};

// Reads the MLA fields when the config has kv_lora_rank or its model_type is deepseek_v2 / deepseek_v3
// (then kv_lora_rank is required); otherwise leaves c->mla disabled. Errors name the file and field.
Status parse_mla_config(const ConfigFields& f, ModelConfig* c);

}  // namespace tern
