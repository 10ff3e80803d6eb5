#include "model/archs/architectures.h"

namespace tern {

const std::vector<ArchEntry>& architecture_table() {
  static const std::vector<ArchEntry> table = {
      {"LlamaForCausalLM", build_llama},
      {"Qwen2ForCausalLM", build_qwen2},
      {"Qwen3ForCausalLM", build_qwen3},
      {"MistralForCausalLM", build_mistral},
      {"DeepseekV3ForCausalLM", build_deepseek_v3},
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
