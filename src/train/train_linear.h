// Linear layer forward and backward for training, in f32, on the project's blocked GEMM (ops/matmul.h).
// W is stored as nn.Linear keeps it: [out, in] row-major.
//   forward   Y[m, out] = X[m, in] · Wᵀ
//   backward  dX[m, in] = dY[m, out] · W        (matmul against Wᵀ [in, out], transposed here)
//             dW[out, in] += dYᵀ[out, m] · X    (matmul of dYᵀ against Xᵀ [in, m], both transposed here)
// The transposes are O(m·(in + out) + in·out) copies beside O(m·in·out) products, so every big product
// runs through the same packed GEMM kernels as inference instead of a naive loop.
#pragma once

#include <cstdint>
#include <vector>

#include "core/exec_context.h"

namespace tern::train {

// Reused buffers (grown on demand) for the transposes and the dW product.
struct LinearScratch {
  std::vector<float> a, b, c;
};

// at[cols, rows] = aᵀ for a[rows, cols], blocked and split over the pool's threads.
void transpose(ExecContext& ctx, const float* a, int64_t rows, int64_t cols, float* at);

// y[m, out] = x[m, in] · wᵀ.
void linear_forward(ExecContext& ctx, const float* x, int64_t m, const float* w, int64_t out, int64_t in, float* y);

// dx (may be null): [m, in], written, or added to when accumulate_dx; dw: [out, in], always added to.
// xt: xᵀ [in, m] when the caller has it (one input feeding several linears: q/k/v, gate/up), else null.
void linear_backward(ExecContext& ctx, const float* dy, const float* x, int64_t m, const float* w, int64_t out,
                     int64_t in, float* dx, bool accumulate_dx, float* dw, LinearScratch& s, const float* xt = nullptr);

}  // namespace tern::train
