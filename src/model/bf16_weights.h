// --activations bf16 with an F16 checkpoint (issue 20): the bf16-dot prefill GEMMs (AVX512-BF16,
// AMX) multiply bf16 weights only, so with F16 weights a prefill fell back to the f32 GEMM (103 vs
// 160-170 tok/s on the synth Llama-3.2-1B). Here the decoder layers' dense F16 matrices (attention
// q/k/v/o, feed-forward gate/up/down) are rounded to bf16 once at load, into the model's arena.
// The copy replaces the F16 tensor in the resident set: the file pages it was read from are dropped
// from this process (they are read-only file pages; nothing reads them again), so the resident
// weights stay ~the file's size. The embedding / LM head are left as stored (decode reads them as
// F16 exactly as before; the prefill's LM head is one row). Decode of the layers then reads bf16
// (same bytes per token) and carries the weights' bf16 rounding, which --activations bf16 accepts.
#pragma once

#include <cstddef>
#include <functional>

#include "core/thread_pool.h"
#include "core/weight_arena.h"
#include "model/transformer_weights.h"

namespace tern {

struct Bf16Rounding {
  int matrices = 0;  // F16 matrices rounded to bf16
  size_t bytes = 0;  // their bytes (the same in bf16)
};

// Rounds every dense F16 matrix of w.layers (not MoE experts nor MLA) to bf16 in `arena`, in
// parallel over `pool`, then calls release(source, bytes) on what it read (the loader drops the
// file's pages, or frees a copy it made).
Bf16Rounding round_f16_layers_to_bf16(TransformerWeights& w, WeightArena& arena, ThreadPool& pool,
                                      const std::function<void(const void*, size_t)>& release);

}  // namespace tern
