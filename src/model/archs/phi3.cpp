// Phi-3: Llama blocks stored fused — self_attn.qkv_proj [q + k + v rows, hidden] and
// mlp.gate_up_proj [2·inter, hidden] (gate rows first), split at load; partial_rotary_factor (when
// present) rotates the first dims of each head in the rotate_half layout; sliding_window, when set,
// applies to every layer as in transformers' Phi3Attention. (Phi-3 "longrope" scaling is refused by
// the config parser as an unsupported rope type.)
#include "model/archs/architectures.h"
#include "model/llama_family.h"

namespace tern {

Result<TransformerWeights> build_phi3(WeightBinder& binder, const ModelConfig& cfg) {
  return bind_llama_family(
      binder, cfg, {.qkv_bias = cfg.attention_bias, .sliding_window = true, .fused_qkv = true, .fused_gate_up = true});
}

}  // namespace tern
