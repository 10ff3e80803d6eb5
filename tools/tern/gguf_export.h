// GGUF export shared by `tern quantize --format gguf --type T` and `tern gguf quantize`:
// a Hugging Face checkpoint -> GGUF v3 in one ggml block type (model/gguf/gguf_quantize.h).
#pragma once

#include <string>

namespace tern::cli {

// Progress with ETA on stderr unless quiet; a one-line error for an unknown type or a bad model.
void export_gguf(const std::string& model_dir, const std::string& out, const std::string& type_name, bool quiet);

}  // namespace tern::cli
