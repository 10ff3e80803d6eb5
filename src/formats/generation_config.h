// generation_config.json: the token ids generation defaults to (eos_token_id may list several end-of-turn tokens,
// as Llama-3's does). Its ids, like config.json's bos / eos / pad ids (checked by parse_model_config), must be rows
// of the model's embedding: below config.json's vocab_size, which may exceed the tokenizer's count (padding rows).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "core/status.h"

namespace tern {

struct GenerationConfig {
  std::vector<int32_t> bos_token_ids;
  std::vector<int32_t> eos_token_ids;
};

// generation_config.json text; `source` names the file in errors.
Result<GenerationConfig> parse_generation_config(const std::string& json_text, const std::string& source,
                                                 int64_t vocab_size);
// DIR/generation_config.json, or nullopt when there is none.
Result<std::optional<GenerationConfig>> load_generation_config(const std::string& model_dir, int64_t vocab_size);

}  // namespace tern
