#include "train/train_loss.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <vector>

namespace tern::train {

namespace {
struct Partial {
  double ce = 0, kl = 0;
  char pad[48];
};
}  // namespace

LossSums loss_and_grad(ExecContext& ctx, float* logits, int64_t m, int64_t vocab, const int32_t* targets,
                       const TeacherRows* teacher, double alpha, float grad_scale) {
  std::vector<Partial> part(size_t(ctx.threads()));
  const float a = teacher ? float(alpha) : 0.f;
  ctx.pool().run([&](int t, int nt) {
    const int64_t r0 = m * t / nt, r1 = m * (t + 1) / nt;
    Partial& p = part[size_t(t)];
    std::vector<float> top;
    for (int64_t r = r0; r < r1; ++r) {
      float* z = logits + r * vocab;
      float mx = z[0];
      for (int64_t j = 1; j < vocab; ++j) mx = std::max(mx, z[j]);
      double sum = 0;
      for (int64_t j = 0; j < vocab; ++j) sum += std::exp(double(z[j] - mx));
      const double lse = double(mx) + std::log(sum);
      const int32_t tgt = targets[r];
      p.ce += lse - double(z[tgt]);
      // z becomes q (the student's probabilities); KL terms read log q = z - lse before that.
      double kl = 0, rest_scale = 1.0;
      if (teacher) {
        const int64_t k = teacher->k;
        const int32_t* ids = teacher->ids ? teacher->ids + r * k : nullptr;
        const float* lp = teacher->logp + r * k;
        double q_top = 0;
        for (int64_t i = 0; i < k; ++i) {
          const int64_t j = ids ? ids[i] : i;
          const double pi = std::exp(double(lp[i]));
          q_top += std::exp(double(z[j]) - lse);
          if (pi > 0) kl += pi * (double(lp[i]) - (double(z[j]) - lse));
        }
        const float rl = teacher->rest_logp ? teacher->rest_logp[r] : -std::numeric_limits<float>::infinity();
        if (std::isfinite(rl)) {
          const double pr = std::exp(double(rl));
          const double qr = std::max(1.0 - q_top, 1e-30);
          kl += pr * (double(rl) - std::log(qr));
          rest_scale = 1.0 - double(a) * pr / qr;
        }
        p.kl += kl;
      }
      // The top-k entries first (they read the original z), then every other token's q · rest_scale.
      if (teacher) {
        const int64_t k = teacher->k;
        const int32_t* ids = teacher->ids ? teacher->ids + r * k : nullptr;
        const float* lp = teacher->logp + r * k;
        top.resize(static_cast<size_t>(k));
        for (int64_t i = 0; i < k; ++i) {
          const int64_t j = ids ? ids[i] : i;
          top[size_t(i)] = float(std::exp(double(z[j]) - lse) - double(a) * std::exp(double(lp[i])));
        }
        for (int64_t j = 0; j < vocab; ++j) z[j] = float(std::exp(double(z[j]) - lse) * rest_scale);
        for (int64_t i = 0; i < k; ++i) z[ids ? ids[i] : i] = top[size_t(i)];
      } else {
        for (int64_t j = 0; j < vocab; ++j) z[j] = float(std::exp(double(z[j]) - lse));
      }
      z[tgt] -= 1.f - a;
      for (int64_t j = 0; j < vocab; ++j) z[j] *= grad_scale;
    }
  });
  LossSums s;
  for (const auto& p : part) {
    s.ce += p.ce;
    s.kl += p.kl;
  }
  s.rows = m;
  return s;
}

void teacher_log_probs(const float* logits, int64_t vocab, float* logp_full) {
  float mx = logits[0];
  for (int64_t j = 1; j < vocab; ++j) mx = std::max(mx, logits[j]);
  double sum = 0;
  for (int64_t j = 0; j < vocab; ++j) sum += std::exp(double(logits[j] - mx));
  const float lse = float(double(mx) + std::log(sum));
  for (int64_t j = 0; j < vocab; ++j) logp_full[j] = logits[j] - lse;
}

void teacher_top_k(const float* logp_full, int64_t vocab, int64_t k, int32_t* ids, float* logp, float* rest_logp,
                   int32_t* order) {
  std::iota(order, order + vocab, 0);
  std::partial_sort(order, order + k, order + vocab,
                    [&](int32_t x, int32_t y) { return logp_full[x] > logp_full[y] || (logp_full[x] == logp_full[y] && x < y); });
  double top = 0;
  for (int64_t i = 0; i < k; ++i) {
    ids[i] = order[i];
    logp[i] = logp_full[order[i]];
    top += std::exp(double(logp[i]));
  }
  const double rest = 1.0 - top;
  *rest_logp = rest > 1e-12 ? float(std::log(rest)) : -std::numeric_limits<float>::infinity();
}

}  // namespace tern::train
