// The quantized-weight branch of the matmul front door (ops/matmul.h): Int8Channel (W8A16 / W8A8),
// Int4Group and Fp8E4M3 weights. Same contract as matmul(): y[m, w.rows] = x[m, w.cols] · wᵀ (+ bias).
#pragma once

#include <cstdint>

#include "core/exec_context.h"
#include "core/weight_matrix.h"

namespace tern {

inline bool is_tern_quantized(const WeightMatrix& w) {
  return w.format == WeightFormat::Int8Channel || w.format == WeightFormat::Int4Group ||
         w.format == WeightFormat::Fp8E4M3;
}

void matmul_quantized(ExecContext& ctx, const float* x, int64_t m, const WeightMatrix& w, float* y,
                      const float* bias);

// e.g. "int4_avx2", "w8a8_amx", "fp8_scalar".
const char* matmul_quantized_kernel_name(const CpuFeatures& cpu, int64_t m, const WeightMatrix& w);

}  // namespace tern
