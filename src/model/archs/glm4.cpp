// GLM-4 (Glm4ForCausalLM): Llama-layout attention with q/k/v biases (attention_bias) and a rotary
// embedding over interleaved pairs (2i, 2i + 1) of the first partial_rotary_factor · head_dim dims;
// the feed-forward is stored fused (mlp.gate_up_proj, gate rows first); two extra RMSNorms per layer
// normalise the attention and feed-forward outputs before their residual adds.
#include "model/archs/architectures.h"
#include "model/llama_family.h"

namespace tern {

Result<TransformerWeights> build_glm4(WeightBinder& binder, const ModelConfig& cfg) {
  return bind_llama_family(binder, cfg,
                           {.qkv_bias = cfg.attention_bias,
                            .rope = RopeLayout::kInterleaved,
                            .fused_gate_up = true,
                            .attn_out_norm = "post_self_attn_layernorm",
                            .ffn_out_norm = "post_mlp_layernorm"});
}

}  // namespace tern
