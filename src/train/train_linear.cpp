#include "train/train_linear.h"

#include <algorithm>

#include "core/weight_matrix.h"
#include "ops/matmul.h"

namespace tern::train {

namespace {
WeightMatrix f32_matrix(const float* w, int64_t rows, int64_t cols) {
  WeightMatrix m;
  m.data = w;
  m.dtype = DType::F32;
  m.rows = rows;
  m.cols = cols;
  return m;
}

void grow(std::vector<float>& v, int64_t n) {
  if (int64_t(v.size()) < n) v.resize(static_cast<size_t>(n));
}

// Adds src into dst over the pool.
void add_into(ExecContext& ctx, float* dst, const float* src, int64_t n) {
  ctx.pool().parallel_for(n, 1024, [&](int64_t i0, int64_t i1) {
    for (int64_t i = i0; i < i1; ++i) dst[i] += src[i];
  });
}
}  // namespace

void transpose(ExecContext& ctx, const float* a, int64_t rows, int64_t cols, float* at) {
  constexpr int64_t kTile = 32;
  const int64_t row_tiles = (rows + kTile - 1) / kTile;
  ctx.pool().parallel_for(row_tiles, 1, [&](int64_t t0, int64_t t1) {
    for (int64_t rt = t0; rt < t1; ++rt) {
      const int64_t r0 = rt * kTile, r1 = std::min(rows, r0 + kTile);
      for (int64_t c0 = 0; c0 < cols; c0 += kTile) {
        const int64_t c1 = std::min(cols, c0 + kTile);
        for (int64_t c = c0; c < c1; ++c)
          for (int64_t r = r0; r < r1; ++r) at[c * rows + r] = a[r * cols + c];
      }
    }
  });
}

void linear_forward(ExecContext& ctx, const float* x, int64_t m, const float* w, int64_t out, int64_t in, float* y) {
  matmul(ctx, x, m, f32_matrix(w, out, in), y);
}

void linear_backward(ExecContext& ctx, const float* dy, const float* x, int64_t m, const float* w, int64_t out,
                     int64_t in, float* dx, bool accumulate_dx, float* dw, LinearScratch& s, const float* xt) {
  if (dx != nullptr) {
    grow(s.a, in * out);
    transpose(ctx, w, out, in, s.a.data());  // wt: [in, out]
    if (accumulate_dx) {
      grow(s.c, m * in);
      matmul(ctx, dy, m, f32_matrix(s.a.data(), in, out), s.c.data());
      add_into(ctx, dx, s.c.data(), m * in);
    } else {
      matmul(ctx, dy, m, f32_matrix(s.a.data(), in, out), dx);
    }
  }
  if (dw != nullptr) {
    grow(s.a, out * m);
    grow(s.c, out * in);
    transpose(ctx, dy, m, out, s.a.data());  // dyt: [out, m]
    if (xt == nullptr) {
      grow(s.b, in * m);
      transpose(ctx, x, m, in, s.b.data());  // xt: [in, m]
      xt = s.b.data();
    }
    matmul(ctx, s.a.data(), out, f32_matrix(xt, in, m), s.c.data());  // [out, in]
    add_into(ctx, dw, s.c.data(), out * in);
  }
}

}  // namespace tern::train
