// MSE clipping: per group, the range shrunk to the clip ratio in [0.75, 1] (step 0.01) whose
// parameters give the least squared rounding error of the group's own weights. Needs no calibration,
// so it serves GPTQ (on the error-compensated weights), AWQ+GPTQ and round-to-nearest alike.
#pragma once

#include <cstdint>

#include "core/status.h"
#include "core/thread_pool.h"
#include "formats/quant/quantized_linear.h"

namespace tern {

// n values of one group; the least-error parameters under `spec` (ratio 1 wins ties).
GroupParams mse_group_params(const float* w, int64_t n, const QuantSpec& spec);

// Round to nearest, each group's range from mse_group_params: w [rows, cols] f32 row-major; rows split
// over `pool` when given (the search costs ~26 roundings per weight).
Result<QuantizedLinear> quantize_rtn_mse(const float* w, int64_t rows, int64_t cols, const QuantSpec& spec,
                                         ThreadPool* pool = nullptr);

}  // namespace tern
