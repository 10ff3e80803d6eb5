// A stored weight matrix as Hugging Face nn.Linear keeps it: [rows = out_features, cols = in_features],
// row-major, in its stored dtype. Usually points straight into the safetensors mmap.
#pragma once

#include <cstdint>

#include "core/dtype.h"

namespace tern {

struct WeightMatrix {
  const void* data = nullptr;
  DType dtype = DType::F32;
  int64_t rows = 0;  // out features (n)
  int64_t cols = 0;  // in features (k)

  size_t bytes() const { return size_t(rows) * size_t(cols) * dtype_size(dtype); }
  const void* row(int64_t r) const {
    return static_cast<const char*>(data) + size_t(r) * size_t(cols) * dtype_size(dtype);
  }
};

}  // namespace tern
