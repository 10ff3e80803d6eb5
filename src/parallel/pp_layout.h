// Pipeline parallelism (issue 17): which layers one rank runs (pure arithmetic, no weights).
// A job of N = T × P ranks is P stages of T tensor-parallel ranks each; world rank r is stage r / T,
// tensor-parallel index r % T, and stage s runs a contiguous range of layers, split by bytes
// (parallel/pp_split.h) or given by --pp-layers. Stage 0 also holds the embedding, the last stage the
// final norm and the LM head. Activations [rows, hidden] f32 (the residual stream leaving a stage) go
// from rank r to rank r + T (the same index of the next stage); the last stage's index-0 rank sends the
// final-normed hidden rows and the logits back to world rank 0, which runs the scheduler and sampling.
// With expert parallelism (--tp T --pp P --ep E, N = T × E × P) each stage is E expert groups of T
// ranks: stage r / (T·E), expert group (r % (T·E)) / T, tensor-parallel index r % T — a stage is
// exactly the ranks of a single-stage `--tp T --ep E` job (rank_groups below). PpLayout's `tp` is then
// the stage's T·E ranks and `tp_rank` the rank's index among them: activations go from r to r + T·E,
// every rank of a stage holding the whole residual stream.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/status.h"

namespace tern {

struct PpLayout {
  int stages = 1, stage = 0;  // P, this rank's stage
  int tp = 1, tp_rank = 0;    // ranks per stage (T, or T·E with --ep), this rank's index in its stage
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
// stage_layers (--pp-layers): each stage's layer count instead of the split (empty: split); errors
// name the flag when the count is not `stages`, a stage has none, or the sum is not n_layers.
Result<PpLayout> pp_layout(int n_layers, int world_rank, int world_size, int stages, int micro_batches = 1,
                           int steps_in_flight = 0, const std::vector<int>& stage_layers = {});

// The communicator groups of world rank `rank` in a --tp T --ep E job (any --pp): the T ranks of its
// tensor-parallel group and the T·E ranks of its stage (the expert-parallel ranks: they hold the
// stage's layers with the other experts). World ranks, ascending.
struct RankGroups {
  std::vector<int> tp;     // [stage0 + g·T, stage0 + (g + 1)·T)
  std::vector<int> stage;  // [stage0, stage0 + T·E), stage0 = rank / (T·E) · T·E
};
RankGroups rank_groups(int rank, int tp, int ep);

// --pp-layers "A,B,..." (the stages' layer counts, overriding the split by bytes): the numbers, or
// an error naming the flag (not a list of positive integers, a count other than `stages`). The sum is
// checked against the model's layers at load (pp_layout).
Result<std::vector<int>> parse_pp_layers(const std::string& text, int stages);

// Tags of the pipeline's point-to-point messages (distinct from the group communicator's).
constexpr int kPpTagActivation = 1101;  // [rows, hidden] residual stream, stage s -> s + 1
constexpr int kPpTagHidden = 1102;      // [n_out, hidden] final-normed rows, last leader -> rank 0
constexpr int kPpTagLogits = 1103;      // [rows, vocab] logits, last leader -> rank 0

}  // namespace tern
