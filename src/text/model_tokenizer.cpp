#include "text/model_tokenizer.h"

#include <malloc.h>

#include <filesystem>

#include "text/gguf_tokenizer.h"

namespace tern {

Result<std::optional<Tokenizer>> load_model_tokenizer(const std::string& path, const GgufFile* gguf) {
  if (gguf || is_gguf_file(path)) {
    std::optional<GgufFile> opened;
    if (!gguf) {
      TERN_ASSIGN_OR_RETURN(GgufFile g, GgufFile::open(path));
      gguf = &opened.emplace(std::move(g));
    }
    TERN_ASSIGN_OR_RETURN(Tokenizer t, gguf_tokenizer(*gguf));
    return std::optional<Tokenizer>(std::move(t));
  }
  std::error_code ec;
  if (!std::filesystem::exists(std::filesystem::path(path) / "tokenizer.json", ec)) return std::optional<Tokenizer>();
  TERN_ASSIGN_OR_RETURN(Tokenizer t, Tokenizer::load(path));
  return std::optional<Tokenizer>(std::move(t));
}

std::future<Result<std::optional<Tokenizer>>> load_model_tokenizer_async(std::string path,
                                                                          std::shared_ptr<const GgufFile> gguf) {
  return std::async(std::launch::async, [path = std::move(path), gguf = std::move(gguf)] {
    auto t = load_model_tokenizer(path, gguf.get());
    // What the build freed (the parsed spec: tens of MB of strings) sits in this thread's malloc arena,
    // which nothing else allocates from: hand it back rather than keep it resident.
    malloc_trim(0);
    return t;
  });
}

}  // namespace tern
