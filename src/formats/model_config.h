// A model's hyper-parameters, parsed from Hugging Face config.json in either the transformers 4.x
// form (rope_theta, rope_scaling, torch_dtype) or the 5.x form (rope_parameters, dtype).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/dtype.h"
#include "core/status.h"
#include "formats/mla_config.h"
#include "formats/moe_config.h"
#include "ops/rope.h"

namespace tern {

struct ModelConfig {
  std::string architecture;  // architectures[0], e.g. "LlamaForCausalLM"
  std::string model_type;    // e.g. "llama", "qwen2", "qwen3", "mistral"
  int64_t vocab_size = 0;
  int64_t hidden_size = 0;
  int64_t intermediate_size = 0;
  int n_layers = 0;
  int n_heads = 0;
  int n_kv_heads = 0;          // = n_heads when absent
  int head_dim = 0;            // explicit head_dim, else hidden_size / n_heads
  double rms_norm_eps = 1e-6;
  int64_t max_position_embeddings = 0;
  RopeConfig rope;             // theta + scaling, rotary_dim = head_dim
  std::string rope_type = "default";
  bool tie_word_embeddings = false;
  bool attention_bias = false; // q/k/v biases (qwen2 always has them)
  bool mlp_bias = false;
  int sliding_window = 0;      // 0 = none; mistral's sliding_window when set
  std::string hidden_act = "silu";
  DType dtype = DType::BF16;   // torch_dtype / dtype
  std::vector<int32_t> bos_token_ids;  // usually one
  std::vector<int32_t> eos_token_ids;  // eos_token_id may be an int or a list
  MoeConfig moe;               // mixture of experts (disabled for dense models)
  MlaConfig mla;               // multi-head latent attention (DeepSeek); mla.enabled() when used

  // Bytes of KV cache per token at the given element size (all layers; scales not counted): K and
  // V of every kv head, or MLA's latent + rope key.
  int64_t kv_bytes_per_token(size_t elem_bytes) const {
    const int64_t per_layer = mla.enabled() ? mla.kv_row() : int64_t(2) * n_kv_heads * head_dim;
    return n_layers * per_layer * int64_t(elem_bytes);
  }
};

// Parses config.json text. `source` names the file in error messages.
Result<ModelConfig> parse_model_config(const std::string& json_text, const std::string& source);

// Reads DIR/config.json.
Result<ModelConfig> load_model_config(const std::string& model_dir);

}  // namespace tern
