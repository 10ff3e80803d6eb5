// One rank's part of a model under tensor parallelism (parallel/tp_layout.h): the weights an
// architecture bound at their full shapes, cut to this rank's slices (model/tp_slice.h). Row slices
// ([out, in] row-major: q/k/v, gate/up, the LM head) stay views into the checkpoint mmap, so the
// rank only ever faults in its own pages (the same for every routed and shared expert of a MoE
// layer, cut by TpLayout::expert_inter / shared_inter, and for MLA's q_b / kv_b rows and o_proj
// columns of the rank's heads); column slices (o, down: [hidden, in/T]) are copied once
// into the arena and the source pages released from this process (madvise), so resident memory per
// rank is about 1/T of the layer weights. Biases of o and down are kept by rank 0 only (added once to
// the sum).
//
// Formats: dense (f32/f16/bf16), tern's quantized checkpoints (int8 per channel, int4 groups, FP8)
// and GGUF block types. Weights repacked at load (quantized checkpoints) live in the arena the binder
// filled (`bind_arena`): whatever this rank keeps of them is copied into `arena`, so the caller can
// free the bind arena and with it the other ranks' parts. A column split must fall on the format's
// column block (int4 group, 32 values for Q8_0 / Q4_0, 256 for K-quants): tp_align_layout moves the
// intermediate splits (dense, experts, shared expert) onto their down_proj's blocks; the attention split (whole heads) that misses o_proj's
// blocks is an error naming the layer, the tensor and the block size.
#pragma once

#include "core/status.h"
#include "core/weight_arena.h"
#include "formats/model_config.h"
#include "model/tp_slice.h"
#include "model/transformer_weights.h"
#include "parallel/tp_layout.h"

namespace tern {

// The layout with its intermediate split moved onto whole column blocks of every layer's down_proj
// (an uneven split when inter / T is not a multiple of the block: e.g. int4 group 128 on 1408 columns
// gives 640 + 768), and the attention split checked against o_proj's blocks.
Result<TpLayout> tp_align_layout(const TpLayout& t, const TransformerWeights& full, const ModelConfig& cfg);

// full: bound for `cfg` (full shapes). Returns the weights tp_local_config(cfg, t) describes, plus
// lm_head rows t.vocab. bind_arena: where the binder repacked weights (null: nothing to copy out).
Result<TransformerWeights> shard_weights(const TransformerWeights& full, const ModelConfig& cfg, const TpLayout& t,
                                         WeightArena& arena, const WeightArena* bind_arena = nullptr);

}  // namespace tern
