// SwiGLU: out[i, j] = silu(gate[i, j]) * up[i, j], silu(x) = x / (1 + exp(-x)).
// gate, up, out: [m, d] f32; out may alias gate or up.
#pragma once

#include <cstdint>

#include "core/exec_context.h"

namespace tern {

void swiglu(ExecContext& ctx, const float* gate, const float* up, int64_t m, int64_t d, float* out);

}  // namespace tern
