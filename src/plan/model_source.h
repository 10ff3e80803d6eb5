// What `tern plan` reads a model from: a config.json, a checkpoint directory holding one, or a GGUF
// file (its llama.cpp metadata gives the shape; its tensors give the real bytes at their types).
#pragma once

#include <string>

#include "core/status.h"
#include "plan/model_shape.h"

namespace tern::plan {

struct ModelSource {
  ModelShape shape;
  double file_weight_bytes = 0;  // GGUF: the bytes of every tensor as stored (0 for config.json)
  std::string file_types;        // GGUF: the tensor types by bytes, e.g. "Q4_K 78%, Q6_K 14%, F32 0%"
};

Result<ModelSource> load_model_source(const std::string& path);

}  // namespace tern::plan
