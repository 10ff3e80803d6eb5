// LayerNorm as torch computes it in fp32 (GPT-2's ln_1 / ln_2 / ln_f):
//   mean = mean(x[i, :]), var = mean((x[i, :] - mean)²)   (biased), rstd = 1 / sqrt(var + eps)
//   out[i, :] = (x[i, :] · rstd - mean · rstd) · weight + bias
// x, out: [m, d] f32 (out may alias x); weight: [d]; bias: [d] or null.
// With `residual` != nullptr it first does x[i,:] += residual[i,:] in place (fused add + norm).
#pragma once

#include <cstdint>

#include "core/exec_context.h"

namespace tern {

void layer_norm(ExecContext& ctx, float* x, const float* residual, int64_t m, int64_t d, const float* weight,
                const float* bias, float eps, float* out);

}  // namespace tern
