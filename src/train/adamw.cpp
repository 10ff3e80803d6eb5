#include "train/adamw.h"

#include <algorithm>
#include <cmath>

namespace tern::train {

double Schedule::at(int64_t step) const {
  if (warmup > 0 && step < warmup) return lr * double(step + 1) / double(warmup);
  const double span = double(std::max<int64_t>(1, total - warmup));
  const double progress = std::clamp(double(step - warmup) / span, 0.0, 1.0);
  const double floor = min_ratio * lr;
  return floor + (lr - floor) * 0.5 * (1.0 + std::cos(M_PI * progress));
}

double global_norm(ExecContext& ctx, const float* g, int64_t n) {
  std::vector<double> part(size_t(ctx.threads()) * 8, 0.0);  // 8 apart: no false sharing
  ctx.pool().run([&](int t, int nt) {
    const int64_t i0 = n * t / nt, i1 = n * (t + 1) / nt;
    double s = 0;
    for (int64_t i = i0; i < i1; ++i) s += double(g[i]) * g[i];
    part[size_t(t) * 8] = s;
  });
  double s = 0;
  for (int t = 0; t < ctx.threads(); ++t) s += part[size_t(t) * 8];
  return std::sqrt(s);
}

AdamW::AdamW(const ParamLayout& layout, AdamWOptions options)
    : layout_(&layout), o_(options), m_(size_t(layout.total()), 0.f), v_(size_t(layout.total()), 0.f) {}

void AdamW::update(ExecContext& ctx, float* params, const float* grads, double lr) {
  ++t_;
  const float b1 = float(o_.beta1), b2 = float(o_.beta2);
  const float c1 = float(1.0 / (1.0 - std::pow(o_.beta1, double(t_))));
  const float c2 = float(1.0 / (1.0 - std::pow(o_.beta2, double(t_))));
  const float eps = float(o_.eps), flr = float(lr);
  for (const ParamTensor& t : layout_->tensors()) {
    const float decay = t.decay ? float(lr * o_.weight_decay) : 0.f;
    float* p = params + t.offset;
    const float* g = grads + t.offset;
    float* m = m_.data() + t.offset;
    float* v = v_.data() + t.offset;
    ctx.pool().parallel_for(t.numel, 256, [&](int64_t i0, int64_t i1) {
      for (int64_t i = i0; i < i1; ++i) {
        m[i] = b1 * m[i] + (1.f - b1) * g[i];
        v[i] = b2 * v[i] + (1.f - b2) * g[i] * g[i];
        p[i] -= decay * p[i] + flr * (m[i] * c1) / (std::sqrt(v[i] * c2) + eps);
      }
    });
  }
}

}  // namespace tern::train
