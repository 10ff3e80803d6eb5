#include "model/archs/architectures.h"

namespace tern {

const std::vector<ArchEntry>& architecture_table() {
  static const std::vector<ArchEntry> table = {
      {"LlamaForCausalLM", build_llama},
      {"Qwen2ForCausalLM", build_qwen2},
      {"Qwen3ForCausalLM", build_qwen3},
      {"MistralForCausalLM", build_mistral},
      {"GPT2LMHeadModel", build_gpt2},
      {"Gemma2ForCausalLM", build_gemma2},
      {"Phi3ForCausalLM", build_phi3},
      {"Glm4ForCausalLM", build_glm4},
      {"DeepseekV3ForCausalLM", build_deepseek_v3},
      {"MixtralForCausalLM", build_mixtral},
      {"Qwen2MoeForCausalLM", build_qwen2_moe},
      {"Qwen3MoeForCausalLM", build_qwen3_moe},
  };
  return table;
}

const ArchEntry* find_architecture(const std::string& hf_name) {
  for (const auto& e : architecture_table()) {
    if (hf_name == e.hf_name) return &e;
  }
  return nullptr;
}

}  // namespace tern
