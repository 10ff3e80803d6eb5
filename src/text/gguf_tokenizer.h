// The tokenizer stored in GGUF metadata (tokenizer.ggml.*, tokenizer.chat_template), turned into the
// tokenizer.json / tokenizer_config.json texts it stands for so that the one tokenizer implementation
// (text/tokenizer) serves GGUF models too. See gguf_tokenizer.cpp for the mapping.
#pragma once

#include <string>

#include "core/status.h"
#include "text/chat_template/chat_template.h"
#include "formats/gguf/gguf_file.h"
#include "text/tokenizer/tokenizer.h"

namespace tern {

struct GgufTokenizerJson {
  std::string tokenizer_json;
  std::string config_json;    // bos_token / eos_token
  std::string chat_template;  // "" when the file has none
  std::string bos_token, eos_token;
};

Result<GgufTokenizerJson> gguf_tokenizer_json(const GgufFile& g);
Result<Tokenizer> gguf_tokenizer(const GgufFile& g);
// tokenizer.chat_template with bos_token / eos_token for the render context (error when absent).
Result<ModelChatTemplate> gguf_chat_template(const GgufFile& g);

}  // namespace tern
