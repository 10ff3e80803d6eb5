// What the planner needs to know about a model: its sizes, read from config.json arithmetic alone
// (no weights). Covers dense decoders (GQA, biases, tied embeddings, q/k norms), mixtures of experts
// (Mixtral, Qwen-MoE, DeepSeek: routed + shared experts, leading dense layers) and DeepSeek's
// multi-head latent attention (MLA), whose KV cache is a compressed latent per token.
#pragma once

#include <cstdint>
#include <string>

#include "core/status.h"
#include "formats/moe_config.h"

namespace tern {
struct ModelConfig;
}

namespace tern::plan {

struct ModelShape {
  std::string name;          // file or directory it came from (for messages)
  std::string architecture;  // architectures[0]
  std::string model_type;
  // Checkpoint precision (a plan/precision.h name): bf16, fp16 or f32 from torch_dtype, or from the
  // quantization_config (fp8, int8, int4-gN, ...). dtype_error: why a quantization_config could not be
  // priced (dtype is then the torch_dtype's, and planning needs an explicit precision).
  std::string dtype = "bf16";
  std::string dtype_error;
  int64_t vocab = 0, hidden = 0, intermediate = 0, max_positions = 0;
  int layers = 0, heads = 0, kv_heads = 0, head_dim = 0;
  bool tied_embeddings = false;
  bool attention_bias = false;  // q/k/v biases (and o for Llama-style attention_bias)
  bool o_bias = false;
  bool mlp_bias = false;
  bool gated_mlp = true;        // gate/up/down (SwiGLU, GeGLU); false: up/down (GPT-2)
  bool qk_norm = false;         // Qwen3: RMSNorm over head_dim on q and k
  int norms_per_layer = 2;      // Gemma-2 has 4 (pre/post attention and MLP)
  bool layer_norm_bias = false; // LayerNorm with bias (GPT-2)
  int64_t learned_positions = 0;  // GPT-2 wpe rows

  // Mixture of experts. For the families tern runs (Mixtral, Qwen2-MoE, Qwen3-MoE, DeepSeek-V3) the
  // fields below come from the engine's own reading (formats/moe_config.h, kept in `moe`: which layers
  // are MoE layers, decoder_sparse_step and mlp_only_layers included). Other MoE configs are read
  // best-effort: layers [first_dense_layers, layers) with (layer - first_dense) % moe_every == 0.
  MoeConfig moe;
  int n_experts = 0;              // routed experts (0: dense model)
  int experts_per_token = 0;
  int64_t expert_intermediate = 0;
  int n_shared_experts = 0;       // DeepSeek: always-on experts of expert_intermediate each
  int64_t shared_intermediate = 0;  // Qwen2-MoE: one shared expert of this size (+ a sigmoid gate)
  int first_dense_layers = 0;
  int moe_every = 1;
  bool router_bias = false;       // DeepSeek-V3: e_score_correction_bias [n_experts] per MoE layer

  // Multi-head latent attention (DeepSeek-V2/V3); kv_lora_rank > 0 turns it on.
  int64_t q_lora_rank = 0;        // 0: q is one dense projection
  int64_t kv_lora_rank = 0;
  int qk_nope_head_dim = 0, qk_rope_head_dim = 0, v_head_dim = 0;

  bool is_moe() const { return n_experts > 0; }
  bool is_mla() const { return kv_lora_rank > 0; }
  bool is_moe_layer(int layer) const {
    if (moe.enabled()) return moe.is_moe_layer(layer);
    return is_moe() && layer >= first_dense_layers && (layer - first_dense_layers) % moe_every == 0;
  }
  int moe_layers() const;

  // KV cache elements one token needs in one layer: 2 × kv_heads × head_dim, or MLA's
  // kv_lora_rank + qk_rope_head_dim (the latent and the shared rope key, cached once for all heads).
  int64_t kv_elems_per_token_layer() const {
    return is_mla() ? kv_lora_rank + qk_rope_head_dim : int64_t(2) * kv_heads * head_dim;
  }
};

// Parses config.json text (Hugging Face, transformers 4.x or 5.x names; GPT-2 aliases).
Result<ModelShape> parse_model_shape(const std::string& json_text, const std::string& source);
// A config.json file, or a directory holding one.
Result<ModelShape> load_model_shape(const std::string& path);
// The shape of a config tern already parsed (what ModelConfig describes: dense decoders, MoE, MLA).
ModelShape shape_from_config(const ModelConfig& config);

}  // namespace tern::plan
