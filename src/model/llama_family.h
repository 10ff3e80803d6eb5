// The shared binder behind every architecture stored in the Hugging Face `model.layers.N.` layout
// (Llama, Qwen2/3, Mistral, Gemma 2, Phi-3, GLM-4): it binds the blocks an architecture file names
// (model/blocks/) with the variations it selects, and takes the rest from the config (activation,
// soft-capping, query scaling, sliding window per layer).
#pragma once

#include "core/status.h"
#include "formats/model_config.h"
#include "model/blocks/moe.h"
#include "model/transformer_weights.h"
#include "model/weight_binder.h"

namespace tern {

struct LlamaFamilyOptions {
  bool qkv_bias = false;        // q/k/v projections carry biases (qwen2, glm4; llama with attention_bias)
  bool qk_norm = false;         // RMSNorm on each head of q and k before RoPE (qwen3)
  bool sliding_window = false;  // config.sliding_window on every layer unless layer_types says which (mistral, phi3)
  RopeLayout rope = RopeLayout::kHalf;  // kInterleaved: glm4
  // Checkpoint layouts, split at load:
  bool fused_qkv = false;      // self_attn.qkv_proj [q + k + v rows, hidden] (phi3)
  bool fused_gate_up = false;  // mlp.gate_up_proj [2·inter, hidden], gate rows first (phi3, glm4)
  // Norms: Gemma's RMSNorm multiplies by (1 + w); names under model.layers.N. (null: the block has none).
  bool norm_plus_one = false;
  const char* ffn_norm = "post_attention_layernorm";
  const char* attn_out_norm = nullptr;  // gemma2 post_attention_layernorm, glm4 post_self_attn_layernorm
  const char* ffn_out_norm = nullptr;   // gemma2 post_feedforward_layernorm, glm4 post_mlp_layernorm
  float embed_scale = 1.f;              // gemma: √hidden in the checkpoint dtype
  // Mixture of experts (mixtral, qwen2_moe, qwen3_moe): the layers cfg.moe.is_moe_layer() names
  // bind the MoE block under "model.layers.N.<moe_module>." with these tensor names instead of
  // the dense mlp; the others keep "mlp." of intermediate_size.
  const MoeTensorNames* moe = nullptr;
  const char* moe_module = "mlp";
};

Result<TransformerWeights> bind_llama_family(WeightBinder& binder, const ModelConfig& cfg,
                                             const LlamaFamilyOptions& options);

// The pieces, for architecture files with their own tensor names (gpt2).
// hidden_act as a feed-forward activation ("silu"; "gelu_pytorch_tanh", "gelu_new").
Result<Activation> activation_from_config(const ModelConfig& cfg);
// Sliding window of layer i: layer_types when given, else `everywhere ? sliding_window : 0`.
int layer_sliding_window(const ModelConfig& cfg, int layer, bool everywhere);
// The score scale: query_pre_attn_scalar^-0.5 when given, else head_dim^-0.5.
float attention_scale(const ModelConfig& cfg);

}  // namespace tern
