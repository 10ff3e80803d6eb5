// A GGUF file's hyper-parameters as a ModelConfig, and back.
//
// Load: the `<arch>.*` keys (llama.cpp's names: block_count, embedding_length, attention.head_count,
// expert_count, ...) are rewritten as the config.json the Hugging Face checkpoint would have had and
// go through the same parser (formats/model_config.h), so every consistency check of config.json
// applies to GGUF files too. Defaults that llama.cpp hard-codes per architecture (qwen3moe always
// renormalises its top-k weights, qwen2moe never does, ...) are written into that config.
// Export: the keys llama.cpp reads for the architecture, from a ModelConfig; a config llama.cpp
// cannot express (a setting its graph for that architecture does not have) is an error naming it.
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "core/status.h"
#include "formats/gguf/gguf_arch.h"
#include "formats/gguf/gguf_file.h"
#include "formats/model_config.h"

namespace tern {

// config.architecture is the Hugging Face name (Qwen3MoeForCausalLM, ...), model_type its model_type.
Result<ModelConfig> gguf_model_config(const GgufFile& g);

// The architecture of a GGUF file (general.architecture, expert_count for llama); an error names
// the file and the unsupported architecture.
Result<const GgufArch*> gguf_file_arch(const GgufFile& g);

using GgufMetadata = std::vector<std::pair<std::string, GgufValue>>;
// general.architecture and the <arch>.* hyper-parameter keys of `c` (tokenizer and file keys are the
// exporter's). `source` names the model in errors.
Status gguf_config_metadata(const ModelConfig& c, const GgufArch& arch, const std::string& source, GgufMetadata* kv);

}  // namespace tern
