// SwiGLU front door. The op is elementwise, so [m, d] is treated as one flat array and split into
// 64-element-aligned chunks when large (prefill); decode-sized inputs stay on the calling thread.
#include "ops/activation.h"

#include <cassert>

#include "kernels/cpu/pointwise_kernels.h"

namespace tern {

void swiglu(ExecContext& ctx, const float* gate, const float* up, int64_t m, int64_t d, float* out) {
  const int64_t n = m * d;
  if (n <= 0) return;
  assert(gate && up && out);
  auto kernel = ctx.cpu().avx512 ? cpu::swiglu_avx512 : ctx.cpu().avx2 ? cpu::swiglu_avx2 : cpu::swiglu_scalar;
  constexpr int64_t kMinElementsPerThread = 1 << 14;
  if (ctx.threads() == 1 || n < 2 * kMinElementsPerThread) {
    kernel(gate, up, n, out);
    return;
  }
  ctx.pool().parallel_for(n, 64, [&](int64_t b, int64_t e) { kernel(gate + b, up + b, e - b, out + b); });
}

void geglu_tanh(ExecContext& ctx, const float* gate, const float* up, int64_t m, int64_t d, float* out) {
  const int64_t n = m * d;
  if (n <= 0) return;
  assert(gate && up && out);
  constexpr int64_t kMinElementsPerThread = 1 << 13;
  if (ctx.threads() == 1 || n < 2 * kMinElementsPerThread) {
    cpu::geglu_tanh_scalar(gate, up, n, out);
    return;
  }
  ctx.pool().parallel_for(n, 64, [&](int64_t b, int64_t e) { cpu::geglu_tanh_scalar(gate + b, up + b, e - b, out + b); });
}

void gelu_tanh(ExecContext& ctx, const float* x, int64_t m, int64_t d, float* out) {
  const int64_t n = m * d;
  if (n <= 0) return;
  assert(x && out);
  constexpr int64_t kMinElementsPerThread = 1 << 13;
  if (ctx.threads() == 1 || n < 2 * kMinElementsPerThread) {
    cpu::gelu_tanh_scalar(x, n, out);
    return;
  }
  ctx.pool().parallel_for(n, 64, [&](int64_t b, int64_t e) { cpu::gelu_tanh_scalar(x + b, e - b, out + b); });
}

}  // namespace tern
