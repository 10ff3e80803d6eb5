// QuantizedLinear (formats/quant/quantized_linear.h) -> the layout the CPU kernels read
// (kernels/cpu/quant_kernels.h), in memory owned by a WeightArena:
//   int4 (any group that is a multiple of 32, symmetric or not)  -> WeightFormat::Int4Group
//   int8 symmetric per output channel                            -> WeightFormat::Int8Channel (W8A16, or W8A8)
//   FP8 e4m3 per output channel                                  -> WeightFormat::Fp8E4M3
// Everything else (other bit widths, grouped int8, act-order g_idx, unfolded smoothing factors, NaN
// FP8 codes) is a Status naming the layer, never a crash.
#pragma once

#include <string>

#include "formats/quant/quantized_linear.h"
#include "core/status.h"
#include "core/thread_pool.h"
#include "core/weight_arena.h"
#include "core/weight_matrix.h"

namespace tern {

Result<WeightMatrix> pack_for_kernels(const QuantizedLinear& ql, bool int8_activations, WeightArena& arena,
                                      const std::string& name);

// A dense matrix (any float dtype, e.g. the mmapped bf16 LM head) quantized at load time with
// symmetric RTN and packed like pack_for_kernels: bits 8 -> Int8Channel (W8A16: x stays f32),
// bits 4 -> Int4Group with `group` columns per scale. Done in blocks of rows, so only one block is
// ever widened to f32 per thread (the 1B LM head is 262 M weights: 1 GiB as f32); the blocks are
// spread over `pool`'s threads when one is given.
Result<WeightMatrix> quantize_dense_for_kernels(const WeightMatrix& dense, int bits, int group, WeightArena& arena,
                                                const std::string& name, ThreadPool* pool = nullptr);

}  // namespace tern
