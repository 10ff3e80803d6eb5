// matmul() for w.format == WeightFormat::Gguf (ops/matmul.cpp forwards here): same contract as
// matmul(), y[m, w.rows] = x[m, w.cols] · wᵀ (+ bias), with w in a ggml block format (w.gguf_type),
// w.cols a multiple of the block size. Kernels: AVX2 when the CPU has it, else scalar.
#pragma once

#include <cstdint>

#include "core/exec_context.h"
#include "core/weight_matrix.h"

namespace tern {

void matmul_gguf(ExecContext& ctx, const float* x, int64_t m, const WeightMatrix& w, float* y, const float* bias);
const char* matmul_gguf_kernel_name(const ExecContext& ctx, int64_t m, const WeightMatrix& w);

}  // namespace tern
