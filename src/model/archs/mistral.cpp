// Mistral: Llama blocks with sliding-window attention on every layer (config.sliding_window tokens,
// a query sees keys with pos - key_pos < window).
#include "model/archs/architectures.h"
#include "model/llama_family.h"

namespace tern {

Result<TransformerWeights> build_mistral(WeightBinder& binder, const ModelConfig& cfg) {
  return bind_llama_family(binder, cfg, {.sliding_window = true});
}

}  // namespace tern
