// Llama 2/3 (and models saved as LlamaForCausalLM): optional attention_bias, llama3 rope scaling
// and explicit head_dim come from the config; tied embeddings are resolved by the shared builder.
#include "model/archs/architectures.h"
#include "model/llama_family.h"

namespace tern {

Result<TransformerWeights> build_llama(WeightBinder& binder, const ModelConfig& cfg) {
  return bind_llama_family(binder, cfg, {.qkv_bias = cfg.attention_bias});
}

}  // namespace tern
