#include "plan/model_source.h"

#include <fmt/format.h>

#include <algorithm>
#include <map>

#include "kernels/cpu/gguf_blocks.h"
#include "formats/gguf/gguf_file.h"
#include "formats/gguf/gguf_config.h"
#include "formats/model_config.h"

namespace tern::plan {

namespace {

// A GGUF file: the shape from its metadata (the same reading `tern run` does), the bytes from its tensors.
Result<ModelSource> load_gguf(const std::string& path) {
  TERN_ASSIGN_OR_RETURN(GgufFile g, GgufFile::open(path));
  TERN_ASSIGN_OR_RETURN(ModelConfig cfg, gguf_model_config(g));
  ModelSource src;
  src.shape = shape_from_config(cfg);
  // Tied when the file has no separate output matrix (llama.cpp then reuses token_embd).
  src.shape.tied_embeddings = g.tensor("output.weight") == nullptr;
  src.shape.name = path;
  std::map<std::string, double> by_type;
  for (const GgufTensor& t : g.tensors()) {
    src.file_weight_bytes += double(t.bytes);
    by_type[gguf_traits(t.type).name] += double(t.bytes);
  }
  std::vector<std::pair<double, std::string>> order;
  for (const auto& [name, bytes] : by_type) order.emplace_back(bytes, name);
  std::sort(order.rbegin(), order.rend());
  for (const auto& [bytes, name] : order) {
    src.file_types += fmt::format("{}{} {:.0f}%", src.file_types.empty() ? "" : ", ", name,
                                  100.0 * bytes / std::max(src.file_weight_bytes, 1.0));
  }
  return src;
}

}  // namespace

Result<ModelSource> load_model_source(const std::string& path) {
  if (is_gguf_file(path)) return load_gguf(path);
  TERN_ASSIGN_OR_RETURN(ModelShape shape, load_model_shape(path));
  ModelSource src;
  src.shape = std::move(shape);
  return src;
}

}  // namespace tern::plan
