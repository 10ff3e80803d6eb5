// Pipeline parallelism (issue 17): which layers one rank runs (pure arithmetic, no weights).
// A job of N = T × P ranks is P stages of T tensor-parallel ranks each; world rank r is
//   stage r / T, tensor-parallel index r % T,
// and stage s runs a contiguous range of layers, split by bytes (parallel/pp_split.h). Stage 0 also holds
// the embedding, the last stage the final norm and the LM head. Activations [rows, hidden] f32 (the
// residual stream leaving a stage) go from rank r to rank r + T (the same tensor-parallel index of
// the next stage); the last stage's index-0 rank sends the final-normed hidden rows and the logits
// back to world rank 0, which runs the scheduler and sampling.
#pragma once

#include <cstdint>

#include "core/status.h"

namespace tern {

struct PpLayout {
  int stages = 1, stage = 0;  // P, this rank's stage
  int tp = 1, tp_rank = 0;    // ranks per stage, this rank's index in its stage
  int layer0 = 0, layers = 0; // this stage runs global layers [layer0, layer0 + layers)
  int micro_batches = 1;      // at most this many pipelined groups of sequences per forward (>= 1)
  int steps_in_flight = 1;    // engine steps rank 0 keeps in the pipeline at once (>= 1; the engine's groups)
  bool enabled() const { return stages > 1; }
  bool first() const { return stage == 0; }
  bool last() const { return stage == stages - 1; }
  int prev_rank() const { return (stage - 1) * tp + tp_rank; }
  int next_rank() const { return (stage + 1) * tp + tp_rank; }
  // The rank of the last stage that talks to rank 0 (final hidden rows, logits).
  int last_leader() const { return (stages - 1) * tp; }
  // World ranks of this rank's stage: [stage·T, (stage + 1)·T).
  int stage_rank0() const { return stage * tp; }
};

// Errors: a rank outside the world, a world size that is not a multiple of `stages`, fewer layers
// than stages (each stage needs one).
// steps_in_flight: 0 means one per stage. Equal layers; parallel/pp_split.h splits by bytes.
Result<PpLayout> pp_layout(int n_layers, int world_rank, int world_size, int stages, int micro_batches = 1,
                           int steps_in_flight = 0);

// Tags of the pipeline's point-to-point messages (distinct from the group communicator's).
constexpr int kPpTagActivation = 1101;  // [rows, hidden] residual stream, stage s -> s + 1
constexpr int kPpTagHidden = 1102;      // [n_out, hidden] final-normed rows, last leader -> rank 0
constexpr int kPpTagLogits = 1103;      // [rows, vocab] logits, last leader -> rank 0

}  // namespace tern
