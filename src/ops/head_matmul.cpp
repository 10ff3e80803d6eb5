// Head-parallel f32 loops: each head's weight [out, in] is read once for all m rows of the step
// (rows are the inner loop over a weight row kept in cache). Eight partial sums per dot product let
// the compiler vectorise without reassociating on its own.
#include "ops/head_matmul.h"

#include <algorithm>

namespace tern {

namespace {

float dot(const float* a, const float* b, int n) {
  float acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  int c = 0;
  for (; c + 8 <= n; c += 8)
    for (int k = 0; k < 8; ++k) acc[k] += a[c + k] * b[c + k];
  float s = ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
  for (; c < n; ++c) s += a[c] * b[c];
  return s;
}

void heads(const HeadMatmulShape& s, const float* x, int64_t m, const float* w, float* y, int h0, int h1) {
  for (int h = h0; h < h1; ++h) {
    const float* wh = w + int64_t(h) * s.out * s.in;
    for (int o = 0; o < s.out; ++o) {
      const float* wr = wh + int64_t(o) * s.in;
      for (int64_t i = 0; i < m; ++i) {
        y[i * s.y_row + int64_t(h) * s.y_head + o] = dot(x + i * s.x_row + int64_t(h) * s.x_head, wr, s.in);
      }
    }
  }
}

}  // namespace

void head_matmul(ExecContext& ctx, const HeadMatmulShape& s, const float* x, int64_t m, const float* w, float* y) {
  if (m <= 0 || s.n_heads <= 0) return;
  const double work = double(m) * s.n_heads * s.out * s.in;
  const int threads = work < (1 << 16) ? 1 : std::min(ctx.threads(), s.n_heads);
  if (threads == 1) {
    heads(s, x, m, w, y, 0, s.n_heads);
    return;
  }
  ctx.pool().run([&](int t, int) {
    if (t >= threads) return;
    heads(s, x, m, w, y, s.n_heads * t / threads, s.n_heads * (t + 1) / threads);
  });
}

}  // namespace tern
