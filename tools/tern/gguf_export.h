// GGUF export shared by `tern quantize --format gguf --type T` and `tern gguf quantize`:
// a Hugging Face checkpoint -> GGUF v3 in one of llama.cpp's mixes, or one block type with --pure
// (compress/gguf_quantize.h, gguf_mix.h).
#pragma once

#include <string>

namespace tern::cli {

// Progress with ETA and the per-tensor types written on stderr unless quiet; a one-line error for an
// unknown or unsupported mix or a bad model.
void export_gguf(const std::string& model_dir, const std::string& out, const std::string& type_name, bool pure,
                 bool quiet);

}  // namespace tern::cli
