// Named tensors a weight binder reads (model/weight_binder.h), whatever file holds them: a
// safetensors checkpoint (formats/safetensors.h) or a GGUF file seen under Hugging Face names
// (formats/gguf/gguf_hf_view.h), so that one builder per architecture serves both.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/dtype.h"

namespace tern {

struct TensorInfo {
  std::string name;
  DType dtype = DType::F32;
  std::vector<int64_t> shape;
  const void* data = nullptr;  // inside the mmap of `file` (or a buffer its source owns)
  size_t bytes = 0;
  std::string file;            // the file it came from (for error messages)
  // A GGUF block type (ggml type id: Q8_0 = 8, Q4_K = 12, ...) whose blocks run along each row;
  // -1: plain `dtype` elements.
  int gguf_type = -1;
  // The data holds the transpose of `shape`: [shape[1], shape[0]] row-major. GGUF stores GPT-2's
  // Conv1D weights ([in, out] in Hugging Face) as [out, in]; a binder that wants [out, in] uses them
  // in place, quantized or not.
  bool stored_transposed = false;

  int64_t numel() const {
    int64_t n = 1;
    for (int64_t d : shape) n *= d;
    return n;
  }
};

class TensorSource {
 public:
  virtual ~TensorSource() = default;
  virtual const TensorInfo* find(const std::string& name) const = 0;
  virtual const std::vector<TensorInfo>& tensors() const = 0;
  // What it was opened from: errors about the checkpoint as a whole (a tensor it lacks) name it.
  virtual const std::string& source() const = 0;
  // How the file itself names tensor `name` when that differs (", GGUF tensor 'blk.1.ffn_up_exps.weight'"),
  // for errors about a missing tensor; empty otherwise.
  virtual std::string stored_name(const std::string& /*name*/) const { return {}; }
};

}  // namespace tern
