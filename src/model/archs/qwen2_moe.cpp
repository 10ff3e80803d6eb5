// Qwen2-MoE (Qwen1.5-MoE, Qwen2-57B-A14B): Qwen2 attention (q/k/v biases) and, on the layers
// decoder_sparse_step / mlp_only_layers make sparse, num_experts routed experts (softmax top-k,
// renormalised only with norm_topk_prob) plus one shared expert on every token whose output is
// scaled by sigmoid(x · shared_expert_gate). Other layers keep a dense mlp of intermediate_size.
#include "model/archs/architectures.h"
#include "model/llama_family.h"

namespace tern {

Result<TransformerWeights> build_qwen2_moe(WeightBinder& binder, const ModelConfig& cfg) {
  static const MoeTensorNames kNames{.shared = "shared_expert", .shared_gate = "shared_expert_gate"};
  if (cfg.sliding_window > 0) return Status::error("Qwen2-MoE with use_sliding_window=true is not supported");
  return bind_llama_family(binder, cfg, {.qkv_bias = true, .moe = &kNames});
}

}  // namespace tern
