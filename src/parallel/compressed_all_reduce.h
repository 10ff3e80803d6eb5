// The tensor-parallel all-reduce compressed to int8 (--tp-comm int8, issue 17), as distributed-llama's
// Q8 buffers: every rank quantizes its partial sums [rows, cols] f32 to int8 codes with one f32 scale
// per row (per token: scale = max|x| / 127, codes round(x / scale)), the ranks exchange them
// (all-gather), and each rank dequantizes all T partials and adds them in f32, in rank order, so every
// rank holds the same sum. A rank's own partial goes through the same rounding as the others', else
// the ranks' residual streams would drift apart.
//
// Bytes each rank hands over per call: rows × (cols + 4) instead of rows × cols × 4 (f32): 3.97× less
// for hidden 512. The cost is one rounding of each partial sum to 8 bits relative to its row's
// largest value; docs/benchmarks.md measures it (ΔPPL, KL against the f32 all-reduce).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/status.h"

namespace tern {

enum class TpCommMode : uint8_t {
  Activation,  // the activation dtype (f32 on the CPU): exact up to the order of the sum
  Int8,        // int8 codes + one f32 scale per row
};

// "auto" / "f32" (the activation dtype) or "int8"; anything else is an error naming the value.
Result<TpCommMode> parse_tp_comm(const std::string& s);
const char* tp_comm_name(TpCommMode m);

// Bytes one rank contributes to one all-reduce of [rows, cols] under `mode` (what
// CommStats::all_reduce_bytes counts): rows·cols·4 for f32, rows·(cols + 4) for int8.
int64_t tp_all_reduce_bytes(TpCommMode mode, int64_t rows, int64_t cols);

// The per-row int8 rounding of one rank's partial sums, in the wire layout [rows] f32 scales then
// [rows, cols] int8 codes (dst: rows·(cols + 4) bytes); and its inverse added into `acc` [rows, cols].
void quantize_rows_int8(const float* x, int64_t rows, int64_t cols, int8_t* dst);
void add_dequantized_rows_int8(const int8_t* src, int64_t rows, int64_t cols, float* acc);

}  // namespace tern
