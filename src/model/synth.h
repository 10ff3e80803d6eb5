// `tern synth`: random-weight checkpoints at the shapes of real models, in Hugging Face layout
// (config.json in the transformers 4.x form, bf16 (or f16/f32) safetensors shards + index), so every size-
// dependent path (kernels, memory, speed) can be exercised without downloading anything.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/dtype.h"
#include "core/status.h"
#include "core/exec_context.h"

namespace tern {

struct SynthShape {
  std::string name;          // e.g. "llama-3.2-1b"
  std::string architecture;  // e.g. "LlamaForCausalLM"
  std::string model_type;    // e.g. "llama"
  int64_t hidden = 0, intermediate = 0, vocab = 0, max_positions = 0;
  int layers = 0, heads = 0, kv_heads = 0, head_dim = 0;
  double rope_theta = 10000.0;
  double llama3_factor = 0;  // > 0: llama3 rope scaling with the other llama3 fields below
  double llama3_original_max = 8192;
  double rms_eps = 1e-5;
  bool tied = false;
  bool qkv_bias = false;     // qwen2
  bool qk_norm = false;      // qwen3
  int sliding_window = 0;    // mistral
  int32_t bos = 1, eos = 2;
  // Mixture of experts (n_experts > 0; formats/moe_config.h has the fields' meaning). model_type picks
  // the family's config names and tensor names: mixtral, qwen2_moe, qwen3_moe, deepseek_v3.
  int n_experts = 0, top_k = 0;
  int64_t moe_intermediate = 0;     // each routed expert (Mixtral: = intermediate)
  int64_t shared_intermediate = 0;  // Qwen2-MoE's gated shared expert
  int n_shared_experts = 0;         // DeepSeek: shared MLP of n × moe_intermediate
  bool norm_topk = true;
  int first_k_dense = 0, n_group = 1, topk_group = 1;
  double routed_scaling = 1.0;
  // DeepSeek multi-head latent attention (kv_lora_rank > 0).
  int64_t q_lora_rank = 0, kv_lora_rank = 0;
  int qk_nope_dim = 0, qk_rope_dim = 0, v_head_dim = 0;
};

const std::vector<SynthShape>& synth_shapes();
const SynthShape* find_synth_shape(const std::string& name);

struct SynthOptions {
  std::string shape;
  std::string out_dir;
  uint64_t seed = 0;
  std::string tokenizer_dir;  // copy tokenizer.json (+ tokenizer_config.json, special_tokens_map.json)
  bool config_only = false;   // write config.json only (for planning; no weights)
  DType dtype = DType::BF16;  // stored dtype of every tensor (bf16 as the real checkpoints; f16/f32 to compare)
  double init_std = 0.02;
  size_t max_shard_bytes = size_t(5) << 30;
};

// config.json text of a shape (transformers 4.x form).
std::string synth_config_json(const SynthShape& shape, DType dtype = DType::BF16);

// Parameters of the checkpoint synthesize() writes for this shape (every tensor's element count).
int64_t synth_parameter_count(const SynthShape& shape);

Status synthesize(ExecContext& ctx, const SynthOptions& options);
// The same for a shape of the caller's own (options.shape is ignored), e.g. a probe model.
Status synthesize(ExecContext& ctx, const SynthShape& shape, const SynthOptions& options);

}  // namespace tern
