// AdamW on f32 master weights (decoupled weight decay, applied only to tensors marked `decay`: not the
// norms), the learning-rate schedule (linear warm-up, then cosine down to min_ratio · lr) and the
// global gradient norm used for clipping.
#pragma once

#include <cstdint>
#include <vector>

#include "core/exec_context.h"
#include "train/train_params.h"

namespace tern::train {

struct AdamWOptions {
  double beta1 = 0.9, beta2 = 0.95, eps = 1e-8, weight_decay = 0.05;
};

struct Schedule {
  double lr = 3e-4;         // peak
  int64_t warmup = 0;       // steps of linear warm-up from lr / warmup
  int64_t total = 1;        // steps in all
  double min_ratio = 0.1;   // the cosine ends at min_ratio · lr
  // The learning rate of step `step` (0-based).
  double at(int64_t step) const;
};

// sqrt(Σ g²) over n values, in double.
double global_norm(ExecContext& ctx, const float* g, int64_t n);

class AdamW {
 public:
  AdamW(const ParamLayout& layout, AdamWOptions options);
  // One update with learning rate lr from grads (already clipped / scaled); advances step().
  void update(ExecContext& ctx, float* params, const float* grads, double lr);
  int64_t step() const { return t_; }
  // The moments and step, for checkpoints.
  std::vector<float>& m() { return m_; }
  std::vector<float>& v() { return v_; }
  void set_step(int64_t t) { t_ = t; }

 private:
  const ParamLayout* layout_;
  AdamWOptions o_;
  std::vector<float> m_, v_;
  int64_t t_ = 0;
};

}  // namespace tern::train
