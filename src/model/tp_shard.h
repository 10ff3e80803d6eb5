// One rank's part of a model under tensor parallelism (parallel/tp_layout.h): the weights an
// architecture bound at their full shapes, cut to this rank's slices. Row slices ([out, in]
// row-major: q/k/v, gate/up, the LM head) stay views into the checkpoint mmap, so the rank only
// ever faults in its own pages; column slices (o, down: [hidden, in/T]) are copied once into the
// arena and the source pages released from this process (madvise), so resident memory per rank is
// about 1/T of the layer weights. Biases of o and down are kept by rank 0 only (added once to the
// sum). Only dense (f32/f16/bf16) layer weights are supported; anything else is an error naming it.
#pragma once

#include "core/status.h"
#include "core/weight_arena.h"
#include "formats/model_config.h"
#include "model/transformer_weights.h"
#include "parallel/tp_layout.h"

namespace tern {

// full: bound for `cfg` (full shapes). Returns the weights tp_local_config(cfg, t) describes, plus
// lm_head rows t.vocab.
Result<TransformerWeights> shard_weights(const TransformerWeights& full, const ModelConfig& cfg, const TpLayout& t,
                                         WeightArena& arena);

// Rows [r0, r0 + n) of a dense matrix, in place.
WeightMatrix row_slice(const WeightMatrix& w, int64_t r0, int64_t n);
// Columns [c0, c0 + n) of a dense matrix, copied into the arena ([rows, n], same dtype).
WeightMatrix column_slice(const WeightMatrix& w, int64_t c0, int64_t n, WeightArena& arena);

}  // namespace tern
