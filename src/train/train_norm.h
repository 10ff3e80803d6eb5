// RMSNorm forward and backward (Llama: y = x · rstd · w, rstd = 1 / sqrt(mean(x²) + eps)).
#pragma once

#include <cstdint>
#include <vector>

#include "core/exec_context.h"

namespace tern::train {

// x, y: [m, n]; w: [n]; rstd: [m] saved for the backward.
void rms_norm_forward(ExecContext& ctx, const float* x, int64_t m, int64_t n, const float* w, double eps, float* y,
                      float* rstd);

// dx[m, n] += ∂L/∂x; dw[n] += ∂L/∂w, given dy[m, n] and the forward's x and rstd.
// partial: per-thread [threads, n] buffer for the dw sums (grown on demand).
void rms_norm_backward(ExecContext& ctx, const float* dy, const float* x, const float* rstd, int64_t m, int64_t n,
                       const float* w, float* dx, float* dw, std::vector<float>& partial);

}  // namespace tern::train
