// RMSNorm front door: picks the kernel for the host ISA and splits rows over threads when the
// batch is large enough to pay for the fork-join (decode rows stay on one thread).
#include "ops/rms_norm.h"

#include <algorithm>
#include <cassert>

#include "kernels/cpu/pointwise_kernels.h"

namespace tern {

void rms_norm(ExecContext& ctx, float* x, const float* residual, int64_t m, int64_t d, const float* weight,
              float eps, float* out) {
  if (m <= 0 || d <= 0) return;
  assert(x && weight && out);
  auto kernel = ctx.cpu().avx2 ? cpu::rms_norm_avx2 : cpu::rms_norm_scalar;
  constexpr int64_t kMinElementsPerThread = 1 << 15;
  const int threads = int(std::clamp<int64_t>(m * d / kMinElementsPerThread, 1, std::min<int64_t>(ctx.threads(), m)));
  if (threads == 1) {
    kernel(x, residual, m, d, weight, eps, out);
    return;
  }
  ctx.pool().run([&](int t, int) {
    if (t >= threads) return;
    const int64_t b = m * t / threads, e = m * (t + 1) / threads;
    if (b < e) kernel(x + b * d, residual ? residual + b * d : nullptr, e - b, d, weight, eps, out + b * d);
  });
}

}  // namespace tern
