// Writes GGUF v3 files as llama.cpp's converter lays them out: header, metadata in the given order,
// tensor infos (dims innermost first), data section aligned to general.alignment (32 unless the
// metadata says otherwise), each tensor's data padded to the alignment.
#pragma once

#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "core/status.h"
#include "formats/gguf/gguf_file.h"

namespace tern {

struct GgufTensorToWrite {
  std::string name;
  GgufType type = GgufType::F32;
  std::vector<int64_t> shape;  // row-major (outermost first); the innermost must fit whole blocks
  // Writes the tensor's bytes (gguf_row_bytes(type, shape.back()) x rows) to dst.
  std::function<void(uint8_t* dst)> fill;
};

Status write_gguf(const std::string& path, const std::vector<std::pair<std::string, GgufValue>>& metadata,
                  const std::vector<GgufTensorToWrite>& tensors,
                  const std::function<void(size_t done, size_t total)>& progress = nullptr);

}  // namespace tern
