// RMSNorm as Hugging Face Llama computes it in fp32:
//   out[i, :] = x[i, :] / sqrt(mean(x[i, :]²) + eps) * weight
// x, out: [m, d] f32 (out may alias x). weight: [d] f32 (converted at load time).
// With `residual` != nullptr it first does x[i,:] += residual[i,:] in place (fused add + norm).
#pragma once

#include <cstdint>

#include "core/exec_context.h"

namespace tern {

void rms_norm(ExecContext& ctx, float* x, const float* residual, int64_t m, int64_t d, const float* weight,
              float eps, float* out);

}  // namespace tern
