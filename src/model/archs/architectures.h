// The table from a Hugging Face `architectures` name to the builder that binds its weights.
// One file per architecture under archs/ (DESIGN.md principle 4); each is short because the
// decoder blocks are shared (llama_family.h) and quirks are resolved at load time.
#pragma once

#include <string>
#include <vector>

#include "core/status.h"
#include "formats/model_config.h"
#include "model/transformer_weights.h"
#include "model/weight_binder.h"

namespace tern {

using ArchBuilder = Result<TransformerWeights> (*)(WeightBinder&, const ModelConfig&);

struct ArchEntry {
  const char* hf_name;  // config.json "architectures"[0]
  ArchBuilder build;
};

const std::vector<ArchEntry>& architecture_table();
const ArchEntry* find_architecture(const std::string& hf_name);

// One per file in archs/.
Result<TransformerWeights> build_llama(WeightBinder&, const ModelConfig&);
Result<TransformerWeights> build_qwen2(WeightBinder&, const ModelConfig&);
Result<TransformerWeights> build_qwen3(WeightBinder&, const ModelConfig&);
Result<TransformerWeights> build_mistral(WeightBinder&, const ModelConfig&);
Result<TransformerWeights> build_deepseek_v3(WeightBinder&, const ModelConfig&);

}  // namespace tern
