// A model's tokenizer wherever the model keeps it: DIR/tokenizer.json (+ tokenizer_config.json) or a
// GGUF file's metadata (text/gguf_tokenizer.h). The one front door the CLI and the benches use.
//
// Start-up (issue 20 item 5): the tokenizer depends on nothing the weights' load does, and building it
// (a 128k-entry vocabulary, 280k merges) takes as long as mapping the weights, so
// load_model_tokenizer_async builds it on a thread of its own while Model::load runs; the tokenizer
// it gives is the one load_model_tokenizer gives (same tables, same tokens). For a GGUF file the
// caller opens the file once and passes the parse to both (ModelLoadOptions::gguf).
#pragma once

#include <future>
#include <memory>
#include <optional>
#include <string>

#include "core/status.h"
#include "formats/gguf/gguf_file.h"
#include "text/tokenizer/tokenizer.h"

namespace tern {

// std::nullopt: a directory without tokenizer.json. A GGUF file without tokenizer metadata, or a
// malformed tokenizer, is an error. `gguf`: the file at `path` already parsed (null: parsed here).
Result<std::optional<Tokenizer>> load_model_tokenizer(const std::string& path, const GgufFile* gguf = nullptr);

// The same on a thread of its own; `gguf` (may be null) is kept alive until it is done. The future's
// destructor waits for the thread (std::async), so dropping it early (an error elsewhere) is safe.
std::future<Result<std::optional<Tokenizer>>> load_model_tokenizer_async(std::string path,
                                                                          std::shared_ptr<const GgufFile> gguf = nullptr);

}  // namespace tern
