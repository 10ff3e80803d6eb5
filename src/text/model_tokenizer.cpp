#include "text/model_tokenizer.h"

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
    return load_model_tokenizer(path, gguf.get());
  });
}

}  // namespace tern
