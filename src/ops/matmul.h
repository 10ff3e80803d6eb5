// The one front door for dense matmul against stored weights.
//   y[m, w.rows] = x[m, w.cols] · wᵀ  (+ bias[w.rows] when bias != nullptr)
// x and y are f32, row-major, contiguous. w is bf16, f16 or f32 (see WeightMatrix).
// m == 1..8 takes the memory-bound GEMV path; larger m the compute-bound GEMM path
// (AMX-BF16 > AVX-512-BF16 > AVX-512 > AVX2 > scalar, picked from ctx.cpu()).
#pragma once

#include <cstdint>
#include <span>

#include "core/exec_context.h"
#include "core/weight_matrix.h"

namespace tern {

void matmul(ExecContext& ctx, const float* x, int64_t m, const WeightMatrix& w, float* y,
            const float* bias = nullptr);

// Which kernel matmul() would use for this shape on ctx.cpu(), e.g. "gemv_avx2_bf16" (benchmarks, logs).
// One product of a group: y[m, w.rows] = x[m, w.cols] · wᵀ (+ bias[w.rows]).
struct MatmulJob {
  const float* x = nullptr;
  const WeightMatrix* w = nullptr;
  float* y = nullptr;
  const float* bias = nullptr;
};

// Every job of the group, all with the same m, with the results matmul() gives for each. For a
// decode step (m <= 8) the jobs share ONE parallel region, each split over the threads as matmul()
// splits it: a step that runs several small matrices (a MoE layer's selected experts, q/k/v) pays one
// synchronisation instead of one per matrix. Larger m: one matmul() per job. No y may alias an x.
void matmul_group(ExecContext& ctx, int64_t m, std::span<const MatmulJob> jobs);

const char* matmul_kernel_name(const ExecContext& ctx, int64_t m, const WeightMatrix& w);

}  // namespace tern
