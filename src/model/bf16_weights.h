// --activations bf16 (issue 20): the decoder layers' dense matrices (attention q/k/v/o, feed-forward
// gate/up/down) packed once at load into the bf16-dot GEMM's layout (WeightFormat::Bf16Panels,
// kernels/cpu/matmul_bf16_panels.h). Before, a prefill re-packed every weight into bf16 pairs on every
// call, and F16 checkpoints had no bf16-dot path at all (103 vs 160-170 tok/s prefill on the synth
// Llama-3.2-1B): F16 matrices are rounded to bf16 here (round to nearest even), so they take it too.
// The packed copy replaces the stored matrix in the resident set: decode reads the panels as well
// (gemv_bf16_panels_avx512), and the source leaves the process (`release`: the loader drops the
// file's pages, which nothing reads again, or frees a copy it made). The embedding / LM head stay as
// stored (the prefill's LM head is one row). Decode of F16 layers then carries the weights' bf16
// rounding, which --activations bf16 accepts.
#pragma once

#include <cstddef>
#include <functional>

#include "core/thread_pool.h"
#include "core/weight_arena.h"
#include "model/transformer_weights.h"

namespace tern {

struct Bf16Packing {
  int matrices = 0;     // matrices packed
  int from_f16 = 0;     // of which were F16 (rounded to bf16)
  size_t bytes = 0;     // packed bytes (the stored bf16 / f16 size, rows padded to 32)
};

// Packs every dense F16 / BF16 matrix of w.layers (not MoE experts nor MLA) into `arena`, in parallel
// over `pool`, then calls release(source, bytes) on what it read.
Bf16Packing pack_layers_for_bf16_dot(TransformerWeights& w, WeightArena& arena, ThreadPool& pool,
                                     const std::function<void(const void*, size_t)>& release);

}  // namespace tern
