// Portable scalar matmul: the fallback on CPUs without AVX2 and the readable statement of the contract.
#include "kernels/cpu/matmul_kernels.h"

namespace tern::cpu {

namespace {

// y[i, r] for rows i in [m0, m1), weight rows r in [n0, n1). Four partial sums break the
// add dependency chain so the fallback is not needlessly slow.
void dot_rows(const MatmulArgs& a, int64_t m0, int64_t m1, int64_t n0, int64_t n1) {
  const int64_t k = a.w.cols, n = a.w.rows;
  for (int64_t r = n0; r < n1; ++r) {
    const void* wr = a.w.row(r);
    for (int64_t i = m0; i < m1; ++i) {
      const float* xi = a.x + i * k;
      float s[4] = {0.f, 0.f, 0.f, 0.f};
      int64_t j = 0;
      for (; j + 4 <= k; j += 4)
        for (int u = 0; u < 4; ++u) s[u] += xi[j + u] * load_as_f32(wr, a.w.dtype, size_t(j + u));
      for (; j < k; ++j) s[0] += xi[j] * load_as_f32(wr, a.w.dtype, size_t(j));
      const float b = a.bias ? a.bias[r] : 0.f;
      a.y[i * n + r] = ((s[0] + s[1]) + (s[2] + s[3])) + b;
    }
  }
}

}  // namespace

void gemv_scalar(const MatmulArgs& a, int64_t n0, int64_t n1) { dot_rows(a, 0, a.m, n0, n1); }

void gemm_scalar(ExecContext&, int, const MatmulArgs& a, int64_t m0, int64_t m1, int64_t n0, int64_t n1) {
  dot_rows(a, m0, m1, n0, n1);
}

}  // namespace tern::cpu
