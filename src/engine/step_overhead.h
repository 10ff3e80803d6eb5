// The fixed cost of a decode step: what a step costs beyond streaming its weights and KV and doing
// its FLOPs — the engine's scheduling, the thread pool's fork/join per op, the small ops (norms,
// rope, sampling) and per-sequence bookkeeping. For a 1B model it is ~1% of a step; for a 28M model
// whose weights stream in ~2 ms it is a quarter. `tern plan --calibrate` measures it with tiny
// random models through the real engine, and the planner adds it to every decode step:
//   step time = roofline + step_us + layers × layer_us + batch × (sequence_us + layers × sequence_layer_us)
#pragma once

#include <string>

#include "core/status.h"
#include "core/exec_context.h"

namespace tern {

struct StepOverhead {
  double step_us = 0;            // per step, whatever the model and batch
  double layer_us = 0;           // per decoder layer per step
  double sequence_us = 0;        // per sequence in the batch per step (sampling, bookkeeping)
  double sequence_layer_us = 0;  // per sequence per layer (attention's per-sequence work)
  // GB/s of bf16 KV cache decode attention gets through (from a 400-token context vs a 16-token one);
  // 0 when noise hid the difference.
  double attention_kv_gbs = 0;
  // The probe steps it was solved from, microseconds: (layers, sequences) = (1, 1), (9, 1), (1, 16),
  // (9, 16) with 16-token prompts, and (9, 16) with 400-token prompts.
  double probe_us[5] = {0, 0, 0, 0, 0};
  bool clamped = false;  // a cost solved negative (noise) and was set to 0: the fit is then not exact
};

struct StepOverheadOptions {
  std::string scratch_dir;   // where the probe models are written (removed afterwards)
  int new_tokens = 64;       // decode steps per timed run
  int reps = 5;              // median of
};

// Writes two tiny random Llama models (hidden 32: their weights stay in cache, so their steps are
// all overhead), runs each through Engine + CpuModelRunner on `ctx`'s threads with 1 and 16
// sequences, and solves for the four costs; one more run with long prompts gives the KV rate. Negative solutions (noise) are clamped to 0.
Result<StepOverhead> measure_step_overhead(ExecContext& ctx, const StepOverheadOptions& options);

}  // namespace tern
