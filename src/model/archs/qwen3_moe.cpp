// Qwen3-MoE (Qwen3-30B-A3B, Qwen3-235B-A22B): Qwen3 attention (per-head q/k RMSNorm, explicit
// head_dim) and, on the sparse layers, num_experts routed experts (mlp.experts.N.{gate,up,down}_proj,
// router mlp.gate; softmax top-k, renormalised with norm_topk_prob); no shared expert.
#include "model/archs/architectures.h"
#include "model/llama_family.h"

namespace tern {

Result<TransformerWeights> build_qwen3_moe(WeightBinder& binder, const ModelConfig& cfg) {
  static const MoeTensorNames kNames{};
  if (cfg.sliding_window > 0) return Status::error("Qwen3-MoE with use_sliding_window=true is not supported");
  return bind_llama_family(binder, cfg, {.qkv_bias = cfg.attention_bias, .qk_norm = true, .moe = &kNames});
}

}  // namespace tern
