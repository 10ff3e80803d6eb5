// Qwen3: Llama blocks with an RMSNorm over each head of q and k (q_norm/k_norm, [head_dim]) before
// RoPE; head_dim is explicit (128 on real models, not hidden/heads).
#include "model/archs/architectures.h"
#include "model/llama_family.h"

namespace tern {

Result<TransformerWeights> build_qwen3(WeightBinder& binder, const ModelConfig& cfg) {
  if (cfg.sliding_window > 0) return Status::error("Qwen3 with use_sliding_window=true is not supported");
  return bind_llama_family(binder, cfg, {.qkv_bias = cfg.attention_bias, .qk_norm = true});
}

}  // namespace tern
