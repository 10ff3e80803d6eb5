#include "train/distill.h"

#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <memory>
#include <vector>

#include "train/teacher.h"
#include "train/train_loss.h"
#include "train/train_model.h"

namespace tern::train {

Status run_distill(ExecContext& ctx, const ParamLayout& layout, float* params, const Model* teacher,
                   TokenStream& data, const DistillOptions& o, AdamW& opt, int64_t first_step,
                   const std::function<void(const StepReport&)>& report, const std::function<Status(int64_t)>& save) {
  const int64_t m = o.batch * o.seq, vocab = layout.shape().vocab;
  TrainModel model(layout, o.batch, o.seq, o.recompute);
  std::unique_ptr<Teacher> t;
  if (teacher) t = std::make_unique<Teacher>(*teacher, o.batch, o.seq, o.top_k);
  const double alpha = teacher ? o.alpha : 0.0;
  std::vector<float> grads(size_t(layout.total()));
  std::vector<int32_t> ids(static_cast<size_t>(m)), targets(static_cast<size_t>(m));
  const float grad_scale = float(1.0 / double(m * o.accum));
  const auto t0 = std::chrono::steady_clock::now();
  const int64_t end = o.stop_at > 0 ? std::min(o.stop_at, o.steps) : o.steps;
  for (int64_t step = first_step; step < end; ++step) {
    std::fill(grads.begin(), grads.end(), 0.f);
    LossSums sum;
    for (int64_t a = 0; a < o.accum; ++a) {
      data.next(ids.data(), targets.data());
      if (t) TERN_RETURN_IF_ERROR(t->run(ctx, ids.data()));
      model.forward(ctx, params, ids.data());
      const LossSums s = loss_and_grad(ctx, model.logits(), m, vocab, targets.data(), t ? &t->rows() : nullptr, alpha, grad_scale);
      sum.ce += s.ce;
      sum.kl += s.kl;
      sum.rows += s.rows;
      model.backward(ctx, params, ids.data(), grads.data());
    }
    const double norm = global_norm(ctx, grads.data(), layout.total());
    if (!std::isfinite(norm))
      return Status::error(fmt::format("distill: the gradient is not finite at step {} (lower --lr)", step + 1));
    if (o.clip > 0 && norm > o.clip) {
      const float c = float(o.clip / norm);
      ctx.pool().parallel_for(layout.total(), 1024, [&](int64_t i0, int64_t i1) {
        for (int64_t i = i0; i < i1; ++i) grads[size_t(i)] *= c;
      });
    }
    const double lr = o.schedule.at(step);
    opt.update(ctx, params, grads.data(), lr);
    StepReport r;
    r.step = step + 1;
    r.steps = o.steps;
    r.ce = sum.ce / double(sum.rows);
    r.kl = sum.kl / double(sum.rows);
    r.loss = alpha * r.kl + (1 - alpha) * r.ce;
    r.lr = lr;
    r.grad_norm = norm;
    r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    const int64_t done = step + 1 - first_step;
    r.tokens_per_s = double(done * m * o.accum) / r.seconds;
    r.eta_s = r.seconds / double(done) * double(o.steps - step - 1);
    if (report) report(r);
    if ((o.save_every > 0 && (step + 1) % o.save_every == 0) || step + 1 == end) TERN_RETURN_IF_ERROR(save(step + 1));
  }
  return Status::ok();
}

}  // namespace tern::train
