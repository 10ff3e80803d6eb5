// What one token of one layer stores in the KV pool, by architecture:
//   GQA / MHA (Llama, Qwen, Mistral, Gemma 2, GPT-2 with kv_heads = heads):
//       K and V, each [kv_heads, head_dim]                          2 · kv_heads · head_dim values
//   MLA (DeepSeek): one row [kv_lora_rank + qk_rope_head_dim] = the normed latent c_kv and the roped
//       rope key k_pe, shared by all heads; the "value" is the row's first kv_lora_rank values, so
//       nothing is stored twice                                      kv_lora_rank + qk_rope_head_dim values
// Every layer holds every token of the sequence (Gemma 2's sliding-window layers included: a block
// holds all layers of its token slots, so a window layer cannot release slots its neighbours keep).
#pragma once

#include <cstdint>

#include "formats/model_config.h"

namespace tern {

struct KvLayerShape {
  int kv_heads = 0;
  int k_dim = 0;        // values per head of a K row
  int v_dim = 0;        // values per head of a V row
  bool v_in_k = false;  // V is the first v_dim values of the K row (MLA's latent): no V part

  int64_t values_per_token() const { return int64_t(kv_heads) * (k_dim + (v_in_k ? 0 : v_dim)); }
  // Quantized pools keep one f32 scale per (token, kv head) of every stored part.
  int scaled_rows_per_token() const { return kv_heads * (v_in_k ? 1 : 2); }
};

inline KvLayerShape kv_layer_shape(const ModelConfig& cfg, int /*layer*/) {
  if (cfg.mla.enabled()) return {1, int(cfg.mla.kv_row()), int(cfg.mla.kv_lora_rank), true};
  return {cfg.n_kv_heads, cfg.head_dim, cfg.head_dim, false};
}

}  // namespace tern
