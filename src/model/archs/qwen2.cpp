// Qwen2 / Qwen2.5: Llama blocks with biases on the q/k/v projections (always present, whatever
// attention_bias says). Qwen2's sliding window is off unless use_sliding_window, and then it only
// covers layers above max_window_layers; tern does not implement that partial form yet.
#include "model/archs/architectures.h"
#include "model/llama_family.h"

namespace tern {

Result<TransformerWeights> build_qwen2(WeightBinder& binder, const ModelConfig& cfg) {
  if (cfg.sliding_window > 0) return Status::error("Qwen2 with use_sliding_window=true is not supported");
  return bind_llama_family(binder, cfg, {.qkv_bias = true});
}

}  // namespace tern
