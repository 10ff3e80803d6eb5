// A stored weight matrix as Hugging Face nn.Linear keeps it: [rows = out_features, cols = in_features].
// Dense: row-major in its stored dtype, usually straight from the safetensors mmap.
// Quantized formats keep codes + scales in the layout their kernels read (quant/, gguf/); the
// matmul front door dispatches on `format`, so callers never see the difference.
#pragma once

#include <cstdint>

#include "core/dtype.h"

namespace tern {

enum class WeightFormat : uint8_t {
  Dense,        // dtype F32 / F16 / BF16
  Int8Channel,  // int8 codes [rows, cols], one f32 scale per row (W8A16, or W8A8 with int8_activations)
  Int4Group,    // 4-bit codes, scales (and zero points when asymmetric) per `group` columns of a row
  Fp8E4M3,      // e4m3 bytes [rows, cols], one f32 scale per row
  Gguf,         // a GGUF/ggml block type (gguf_type), blocks along each row
  SparseBitmask,  // compressed-tensors sparse-bitmask / sparse-24-bitmask: only the kept weights of each row,
                  // in column order (dtype BF16, or I8 with scales [rows]), found through `mask` and `row_offsets`
  Bf16Panels,   // dtype BF16 in the layout the bf16-dot GEMM's tile reads, packed at load for --activations
                // bf16 (model/bf16_weights.h): panels of 32 rows, each [ceil(cols / 2)][32] u32 words, word
                // (q, c) = (w[32p + c][2q], w[32p + c][2q + 1]), zero past rows / cols (kernels/cpu/matmul_bf16_panels.h)
};

struct WeightMatrix {
  const void* data = nullptr;
  DType dtype = DType::F32;
  int64_t rows = 0;  // out features (n)
  int64_t cols = 0;  // in features (k)

  WeightFormat format = WeightFormat::Dense;
  const float* scales = nullptr;   // Int8Channel / Fp8E4M3: [rows]; Int4Group: [rows, cols / group]
  const float* zeros = nullptr;    // Int4Group asymmetric: [rows, cols / group]; null when symmetric
  int group = 0;                   // Int4Group: columns per scale (32, 64, 128)
  const int32_t* col_perm = nullptr;  // Int4Group with act-order (GPTQ desc_act): [cols]; the stored
                                      // column j is input column col_perm[j], so groups are contiguous
                                      // and x is gathered by it once per call; null: identity
  bool int8_activations = false;   // Int8Channel: quantize x per token to int8 (W8A8)
  int gguf_type = -1;              // Gguf: ggml type id (Q4_K = 12, ...)
  size_t quant_bytes = 0;          // non-Dense: bytes of codes + scales + zeros one pass reads
  // SparseBitmask: bit (j % 8) of byte mask[r * ((cols + 7) / 8) + j / 8] says column j of row r is kept;
  // the row's kept values start at element row_offsets[r] of `data` (nnz values in all).
  const uint8_t* mask = nullptr;
  const int64_t* row_offsets = nullptr;
  int64_t nnz = 0;

  bool dense() const { return format == WeightFormat::Dense; }
  size_t bytes() const {
    return dense() ? size_t(rows) * size_t(cols) * dtype_size(dtype) : quant_bytes;
  }
  const void* row(int64_t r) const {  // Dense only
    return static_cast<const char*>(data) + size_t(r) * size_t(cols) * dtype_size(dtype);
  }
};

}  // namespace tern
