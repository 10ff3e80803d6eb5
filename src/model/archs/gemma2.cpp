// Gemma 2: Llama-layout attention and GeGLU feed-forward (hidden_activation gelu_pytorch_tanh),
// four RMSNorms per layer in Gemma's x · (1 + w) form (input, post-attention on the attention
// output, pre- and post-feed-forward), embeddings scaled by √hidden (rounded to the checkpoint
// dtype), query_pre_attn_scalar^-0.5 score scale, tanh soft-capping of attention scores and final
// logits, sliding-window attention on the layers layer_types names (every other layer, from 0,
// when absent). Tied LM head.
#include <cmath>

#include "model/archs/architectures.h"
#include "model/llama_family.h"

namespace tern {

namespace {

float round_to_dtype(float x, DType t) {
  if (t == DType::BF16) return bf16_to_f32(f32_to_bf16(x));
  if (t == DType::F16) return f16_to_f32(f32_to_f16(x));
  return x;
}

}  // namespace

Result<TransformerWeights> build_gemma2(WeightBinder& binder, const ModelConfig& cfg) {
  ModelConfig c = cfg;
  if (c.layer_types.empty()) {
    for (int i = 0; i < c.n_layers; ++i) c.layer_types.push_back(i % 2 == 0 ? "sliding_attention" : "full_attention");
  }
  // transformers multiplies by torch.tensor(hidden_size ** 0.5, dtype=the activations' dtype).
  const float scale = round_to_dtype(float(std::sqrt(double(c.hidden_size))), c.dtype);
  return bind_llama_family(binder, c,
                           {.norm_plus_one = true,
                            .ffn_norm = "pre_feedforward_layernorm",
                            .attn_out_norm = "post_attention_layernorm",
                            .ffn_out_norm = "post_feedforward_layernorm",
                            .embed_scale = scale});
}

}  // namespace tern
