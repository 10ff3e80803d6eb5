#include "train/train_pointwise.h"

#include <cmath>
#include <cstring>

#include "ops/rope.h"

namespace tern::train {

void swiglu_forward(ExecContext& ctx, const float* g, const float* u, int64_t m, int64_t n, float* s) {
  ctx.pool().parallel_for(m * n, 256, [&](int64_t i0, int64_t i1) {
    for (int64_t i = i0; i < i1; ++i) s[i] = g[i] / (1.f + std::exp(-g[i])) * u[i];
  });
}

// silu'(g) = σ(g) · (1 + g · (1 − σ(g))).
void swiglu_backward(ExecContext& ctx, const float* ds, const float* g, const float* u, int64_t m, int64_t n,
                     float* dg, float* du) {
  ctx.pool().parallel_for(m * n, 256, [&](int64_t i0, int64_t i1) {
    for (int64_t i = i0; i < i1; ++i) {
      const float sg = 1.f / (1.f + std::exp(-g[i]));
      du[i] = ds[i] * g[i] * sg;
      dg[i] = ds[i] * u[i] * sg * (1.f + g[i] * (1.f - sg));
    }
  });
}

void embedding_forward(ExecContext& ctx, const float* embed, int64_t hidden, const int32_t* ids, int64_t m, float* x) {
  ctx.pool().parallel_for(m, 1, [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r)
      std::memcpy(x + r * hidden, embed + int64_t(ids[r]) * hidden, size_t(hidden) * sizeof(float));
  });
}

void embedding_backward(const float* dx, int64_t hidden, const int32_t* ids, int64_t m, float* dembed) {
  for (int64_t r = 0; r < m; ++r) {
    float* d = dembed + int64_t(ids[r]) * hidden;
    const float* s = dx + r * hidden;
    for (int64_t j = 0; j < hidden; ++j) d[j] += s[j];
  }
}

void rope_forward(ExecContext& ctx, float* x, int64_t m, int n_heads, int head_dim, const int32_t* positions,
                  const std::vector<float>& inv_freq) {
  rope_apply(ctx, x, m, n_heads, head_dim, positions, inv_freq, RopeLayout::kHalf);
}

// The angle is inv_freq · pos, so cos(−a) = cos(a), sin(−a) = −sin(a): the transpose of the rotation.
void rope_backward(ExecContext& ctx, float* dx, int64_t m, int n_heads, int head_dim, const int32_t* positions,
                   const std::vector<float>& inv_freq, std::vector<int32_t>& neg_positions) {
  neg_positions.resize(static_cast<size_t>(m));
  for (int64_t r = 0; r < m; ++r) neg_positions[size_t(r)] = -positions[r];
  rope_apply(ctx, dx, m, n_heads, head_dim, neg_positions.data(), inv_freq, RopeLayout::kHalf);
}

}  // namespace tern::train
