// The shared builder behind every Llama-family architecture file: Hugging Face tensor names
// (model.layers.N.self_attn.q_proj.weight, ...) bound with the variations an architecture selects.
#pragma once

#include "core/status.h"
#include "formats/model_config.h"
#include "model/blocks/moe.h"
#include "model/transformer_weights.h"
#include "model/weight_binder.h"

namespace tern {

struct LlamaFamilyOptions {
  bool qkv_bias = false;       // q/k/v projections carry biases (qwen2; llama with attention_bias)
  bool qk_norm = false;        // RMSNorm on each head of q and k before RoPE (qwen3)
  bool sliding_window = false; // honour config.sliding_window (mistral)
  // Mixture of experts (mixtral, qwen2_moe, qwen3_moe): the layers cfg.moe.is_moe_layer() names
  // bind the MoE block under "model.layers.N.<moe_module>." with these tensor names instead of
  // the dense mlp; the others keep "mlp." of intermediate_size.
  const MoeTensorNames* moe = nullptr;
  const char* moe_module = "mlp";
};

Result<TransformerWeights> bind_llama_family(WeightBinder& binder, const ModelConfig& cfg,
                                             const LlamaFamilyOptions& options);

}  // namespace tern
