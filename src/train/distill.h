// The training loop of `tern distill`: per optimizer step, `accum` micro-batches of `batch` packed
// sequences of `seq` tokens; for each, the teacher's distributions (on the fly, train/teacher.h), the
// student's forward, the loss α·KL + (1 − α)·CE (train/train_loss.h) and the backward; then the global
// gradient norm is clipped and AdamW steps with the warm-up + cosine learning rate.
#pragma once

#include <cstdint>
#include <functional>

#include "core/exec_context.h"
#include "core/status.h"
#include "model/model.h"
#include "train/adamw.h"
#include "train/train_data.h"
#include "train/train_params.h"

namespace tern::train {

struct DistillOptions {
  int64_t batch = 8, seq = 256, accum = 1, steps = 1;
  Schedule schedule;
  double clip = 1.0;      // max global gradient norm; 0 = no clipping
  double alpha = 1.0;     // weight of the KL term; the rest goes to cross-entropy (0 without a teacher)
  int64_t top_k = 0;      // teacher distribution kept over its top k tokens (+ rest); 0 = whole vocabulary
  bool recompute = false; // keep only each layer's input; recompute its activations in the backward
  int64_t save_every = 0; // steps between checkpoints; 0 = at the end only
  int64_t stop_at = 0;    // > 0: stop (saving) after this step, before `steps` (the schedule still spans `steps`)
};

struct StepReport {
  int64_t step = 0, steps = 0;   // step just finished (1-based), of steps
  double loss = 0, ce = 0, kl = 0;  // means over the step's tokens
  double lr = 0, grad_norm = 0;     // grad_norm before clipping
  double tokens_per_s = 0, eta_s = 0, seconds = 0;  // rate over this run's steps so far
};

// Runs steps [first_step, o.steps) (or to o.stop_at), updating params (the student's f32 master weights) and opt.
// teacher: null trains on cross-entropy alone. save(step) is called every save_every steps and after
// the last; report after every step.
Status run_distill(ExecContext& ctx, const ParamLayout& layout, float* params, const Model* teacher,
                   TokenStream& data, const DistillOptions& o, AdamW& opt, int64_t first_step,
                   const std::function<void(const StepReport&)>& report, const std::function<Status(int64_t)>& save);

}  // namespace tern::train
