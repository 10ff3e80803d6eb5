// The one front door for dense matmul against stored weights.
//   y[m, w.rows] = x[m, w.cols] · wᵀ  (+ bias[w.rows] when bias != nullptr)
// x and y are f32, row-major, contiguous. w is bf16, f16 or f32 (see WeightMatrix).
// m == 1..8 takes the memory-bound GEMV path; larger m the compute-bound GEMM path
// (AMX-BF16 > AVX-512-BF16 > AVX-512 > AVX2 > scalar, picked from ctx.cpu()).
#pragma once

#include <cstdint>

#include "core/exec_context.h"
#include "core/weight_matrix.h"

namespace tern {

void matmul(ExecContext& ctx, const float* x, int64_t m, const WeightMatrix& w, float* y,
            const float* bias = nullptr);

// Which kernel matmul() would use for this shape on ctx.cpu(), e.g. "gemv_avx2_bf16" (benchmarks, logs).
const char* matmul_kernel_name(const ExecContext& ctx, int64_t m, const WeightMatrix& w);

}  // namespace tern
