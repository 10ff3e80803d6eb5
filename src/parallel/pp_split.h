// Pipeline stages split by weight bytes, not layer count (issue 17): the one split function the
// engine (model/pp_shard.h weighs its bound weights) and the planner (plan/params.h weighs the config
// at a precision) both use.
#pragma once

#include <vector>

#include "parallel/pp_layout.h"

namespace tern {

// The weight bytes one pipeline stage reads each decode step, the input of the split: every layer's
// own weights (all of an MoE layer's experts: a batch visits most of them and all stay resident),
// plus the last stage's final norm and LM head. The first stage's embedding table costs nothing:
// a step gathers B rows of it ([B, hidden]), and only the rows of tokens seen are ever faulted in;
// so a tied table counts once, on the last stage, where the LM head streams all of it.
struct PpStageBytes {
  std::vector<double> layers;  // [n_layers]: bytes of each global layer
  double first = 0;            // extra on stage 0 (0 in tern: the gathered embedding)
  double last = 0;             // extra on the last stage: final norm + LM head
};

// The contiguous layer ranges of `stages` stages (each at least one layer) that minimise the largest
// stage's bytes: returns stages + 1 boundaries, stage s running layers [b[s], b[s + 1]). Why bytes:
// decode is memory-bound, so a stage's step time is its bytes ÷ bandwidth, and the pipeline runs at
// the pace of its slowest stage (its memory, too, is what it holds). For Llama-3.2-1B (bf16, 16
// layers of 121.6 MB, the 525 MB LM head on the last stage) 2 stages split 10 + 6, not 8 + 8.
// Among equal maxima the later stages take the most layers (equal bytes: 8 layers / 3 = 2, 3, 3).
// Deterministic: every rank computes the same split from the same checkpoint.
// Requires 1 <= stages <= layers.size() (pp_layout checks).
std::vector<int> pp_split_layers(const PpStageBytes& bytes, int stages);
// Each stage's bytes under a split from pp_split_layers.
std::vector<double> pp_stage_totals(const PpStageBytes& bytes, const std::vector<int>& bounds);

// pp_layout with the stages split by `bytes` (bytes.layers.size() layers), or by stage_layers when
// given (--pp-layers; checked as pp_layout says).
Result<PpLayout> pp_layout(const PpStageBytes& bytes, int world_rank, int world_size, int stages,
                           int micro_batches = 1, int steps_in_flight = 0, const std::vector<int>& stage_layers = {});

}  // namespace tern
