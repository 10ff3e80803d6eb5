#include "train/train_norm.h"

#include <algorithm>
#include <cmath>

namespace tern::train {

void rms_norm_forward(ExecContext& ctx, const float* x, int64_t m, int64_t n, const float* w, double eps, float* y,
                      float* rstd) {
  ctx.pool().parallel_for(m, 1, [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      const float* xr = x + r * n;
      double ss = 0;
      for (int64_t j = 0; j < n; ++j) ss += double(xr[j]) * xr[j];
      const float rs = float(1.0 / std::sqrt(ss / double(n) + eps));
      rstd[r] = rs;
      float* yr = y + r * n;
      for (int64_t j = 0; j < n; ++j) yr[j] = xr[j] * rs * w[j];
    }
  });
}

// With g = dy ⊙ w: dx = rstd · (g − x · rstd² · mean(g ⊙ x)), dw = Σ_rows dy ⊙ x · rstd.
void rms_norm_backward(ExecContext& ctx, const float* dy, const float* x, const float* rstd, int64_t m, int64_t n,
                       const float* w, float* dx, float* dw, std::vector<float>& partial) {
  const int T = ctx.threads();
  if (int64_t(partial.size()) < int64_t(T) * n) partial.resize(size_t(T) * size_t(n));
  std::fill(partial.begin(), partial.begin() + int64_t(T) * n, 0.f);
  ctx.pool().run([&](int t, int nt) {
    const int64_t r0 = m * t / nt, r1 = m * (t + 1) / nt;
    float* pw = partial.data() + int64_t(t) * n;
    for (int64_t r = r0; r < r1; ++r) {
      const float* xr = x + r * n;
      const float* dyr = dy + r * n;
      const float rs = rstd[r];
      double gx = 0;
      for (int64_t j = 0; j < n; ++j) gx += double(dyr[j]) * w[j] * xr[j];
      const float c = float(gx / double(n)) * rs * rs;
      float* dxr = dx + r * n;
      for (int64_t j = 0; j < n; ++j) {
        dxr[j] += rs * (dyr[j] * w[j] - xr[j] * c);
        pw[j] += dyr[j] * xr[j] * rs;
      }
    }
  });
  for (int t = 0; t < T; ++t)
    for (int64_t j = 0; j < n; ++j) dw[j] += partial[size_t(t) * size_t(n) + size_t(j)];
}

}  // namespace tern::train
