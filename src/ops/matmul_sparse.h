// The sparse-weight branch of the matmul front door (ops/matmul.h): WeightFormat::SparseBitmask
// (bf16 or int8 non-zeros + a bit per weight). Same contract as matmul():
// y[m, w.rows] = x[m, w.cols] · wᵀ (+ bias).
//   m <= 8 (decode, small batches): the sparse GEMV kernels read each row's non-zeros and mask once for
//          all m rows of x, threads splitting the weight rows.
//   m > 8  (prefill): panels of 32 weight rows are expanded to f32 in per-thread scratch and multiplied
//          by the dense f32 GEMM of the same ISA.
// Kernels: AVX-512 VBMI2 > AVX2 > scalar, from ctx.cpu().
#pragma once

#include <cstdint>

#include "core/exec_context.h"
#include "core/weight_matrix.h"
#include "ops/matmul_columns.h"

namespace tern {

inline bool is_sparse(const WeightMatrix& w) { return w.format == WeightFormat::SparseBitmask; }

void matmul_sparse(ExecContext& ctx, const float* x, int64_t m, const WeightMatrix& w, float* y, const float* bias);

// The m <= cpu::kGemvMaxRows product as a task for matmul_group (no scratch).
ColumnTask sparse_gemv_task(const ExecContext& ctx, const cpu::MatmulArgs& a);

// e.g. "sparse_gemv_avx512_bf16", "sparse_panel_gemm_avx2_i8".
const char* matmul_sparse_kernel_name(const CpuFeatures& cpu, int64_t m, const WeightMatrix& w);

}  // namespace tern
