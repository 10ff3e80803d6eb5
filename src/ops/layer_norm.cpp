// LayerNorm front door: one scalar kernel (GPT-2-sized rows; the compiler vectorises its loops),
// rows split over threads when the batch is large enough to pay for the fork-join.
#include "ops/layer_norm.h"

#include <algorithm>
#include <cassert>

#include "kernels/cpu/pointwise_kernels.h"

namespace tern {

void layer_norm(ExecContext& ctx, float* x, const float* residual, int64_t m, int64_t d, const float* weight,
                const float* bias, float eps, float* out) {
  if (m <= 0 || d <= 0) return;
  assert(x && weight && out);
  constexpr int64_t kMinElementsPerThread = 1 << 15;
  const int threads = int(std::clamp<int64_t>(m * d / kMinElementsPerThread, 1, std::min<int64_t>(ctx.threads(), m)));
  if (threads == 1) {
    cpu::layer_norm_scalar(x, residual, m, d, weight, bias, eps, out);
    return;
  }
  ctx.pool().run([&](int t, int) {
    if (t >= threads) return;
    const int64_t b = m * t / threads, e = m * (t + 1) / threads;
    if (b < e)
      cpu::layer_norm_scalar(x + b * d, residual ? residual + b * d : nullptr, e - b, d, weight, bias, eps, out + b * d);
  });
}

}  // namespace tern
