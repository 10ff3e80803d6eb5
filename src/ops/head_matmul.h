// Per-head matmul with a different f32 weight per head (MLA's absorbed W_UK / W_UV):
//   y[i, h, :out] = x[i, h, :in] · W[h]ᵀ        W: [n_heads, out, in] f32, row-major
// x and y rows may be strided (a head's slice inside a wider row): element (i, h, c) of x is at
// x[i·x_row + h·x_head + c], of y at y[i·y_row + h·y_head + c]. Threads split the heads.
#pragma once

#include <cstdint>

#include "core/exec_context.h"

namespace tern {

struct HeadMatmulShape {
  int n_heads = 0, out = 0, in = 0;
  int64_t x_row = 0, x_head = 0;
  int64_t y_row = 0, y_head = 0;
};

void head_matmul(ExecContext& ctx, const HeadMatmulShape& s, const float* x, int64_t m, const float* w, float* y);

}  // namespace tern
