// Mixtral: Mistral attention (sliding window when config.sliding_window is set; null on Mixtral
// 8x7B / 8x22B) and on every layer a mixture of num_local_experts SwiGLU experts
// (block_sparse_moe.experts.N.w1 = gate, w3 = up, w2 = down; block_sparse_moe.gate = router),
// softmax top-k renormalised.
#include "model/archs/architectures.h"
#include "model/llama_family.h"

namespace tern {

Result<TransformerWeights> build_mixtral(WeightBinder& binder, const ModelConfig& cfg) {
  static const MoeTensorNames kNames{.router = "gate", .experts = "experts", .gate = "w1", .up = "w3", .down = "w2"};
  if (!cfg.moe.enabled()) return Status::error("MixtralForCausalLM: config.json has no experts (num_local_experts)");
  return bind_llama_family(binder, cfg, {.sliding_window = true, .moe = &kNames, .moe_module = "block_sparse_moe"});
}

}  // namespace tern
