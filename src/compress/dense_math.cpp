#include "compress/dense_math.h"

#include <fmt/format.h>

#include <cmath>
#include <functional>

#include "ops/matmul.h"

namespace tern {

void matmul_f32(ExecContext& ctx, const float* x, int64_t m, const float* w, int64_t n, int64_t k, float* y) {
  WeightMatrix wm;
  wm.data = w;
  wm.dtype = DType::F32;
  wm.rows = n;
  wm.cols = k;
  matmul(ctx, x, m, wm, y);
}

void accumulate_gram(ExecContext& ctx, const float* x, int64_t m, int64_t k, double* acc) {
  // xt: [k, m]; then xt · xtᵀ = xᵀ x [k, k] is one GEMM.
  std::vector<float> xt(size_t(k * m)), g(size_t(k * k));
  for (int64_t r = 0; r < m; ++r)
    for (int64_t c = 0; c < k; ++c) xt[size_t(c * m + r)] = x[r * k + c];
  matmul_f32(ctx, xt.data(), k, xt.data(), k, m, g.data());
  for (size_t i = 0; i < g.size(); ++i) acc[i] += double(g[i]);
}

namespace {

// Σ a[k]·b[k], k < n, in four independent sums (lets the compiler vectorize; double throughout).
double dot(const double* a, const double* b, int64_t n) {
  double s0 = 0, s1 = 0, s2 = 0, s3 = 0;
  int64_t k = 0;
  for (; k + 4 <= n; k += 4) s0 += a[k] * b[k], s1 += a[k + 1] * b[k + 1], s2 += a[k + 2] * b[k + 2], s3 += a[k + 3] * b[k + 3];
  for (; k < n; ++k) s0 += a[k] * b[k];
  return (s0 + s1) + (s2 + s3);
}

// fn over [0, n) on the pool's threads when given and the work is worth it, else inline.
void for_range(ThreadPool* pool, int64_t n, int64_t work, const std::function<void(int64_t, int64_t)>& fn) {
  if (pool && pool->size() > 1 && work > (int64_t(1) << 16)) pool->parallel_for(n, 1, fn);
  else fn(0, n);
}

}  // namespace

Status cholesky_lower(double* a, int64_t n, ThreadPool* pool) {
  // Left-looking, by columns: L[j][j] from row j, then every row below it independently.
  for (int64_t j = 0; j < n; ++j) {
    double* aj = a + j * n;
    const double d = aj[j] - dot(aj, aj, j);
    if (!(d > 0)) return Status::error(fmt::format("matrix is not positive definite (pivot {} = {})", j, d));
    const double ljj = std::sqrt(d);
    aj[j] = ljj;
    for_range(pool, n - j - 1, (n - j) * j, [&](int64_t r0, int64_t r1) {
      for (int64_t i = j + 1 + r0; i < j + 1 + r1; ++i) {
        double* ai = a + i * n;
        ai[j] = (ai[j] - dot(ai, aj, j)) / ljj;
      }
    });
  }
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = i + 1; j < n; ++j) a[i * n + j] = 0;
  return Status::ok();
}

void invert_lower(double* l, int64_t n, ThreadPool* pool) {
  // Column c of X = L⁻¹ by forward substitution: X[c][c] = 1/L[c][c], X[i][c] = -(Σ_{c<=k<i} L[i][k] X[k][c]) / L[i][i].
  // Columns are independent (read L, write X), so they run in parallel; column c costs (n - c)²/2, so
  // each of 64 interleaved slots takes every 64th column to balance the threads.
  std::vector<double> x(size_t(n * n), 0.0);
  constexpr int64_t kSlots = 64;
  for_range(pool, kSlots, n * n * n / 6, [&](int64_t s0, int64_t s1) {
    std::vector<double> col(static_cast<size_t>(n));
    for (int64_t s = s0; s < s1; ++s) {
      for (int64_t c = s; c < n; c += kSlots) {
        col[size_t(c)] = 1.0 / l[c * n + c];
        for (int64_t i = c + 1; i < n; ++i) col[size_t(i)] = -dot(l + i * n + c, col.data() + c, i - c) / l[i * n + i];
        for (int64_t i = c; i < n; ++i) x[size_t(i * n + c)] = col[size_t(i)];
      }
    }
  });
  std::copy(x.begin(), x.end(), l);
}

Result<std::vector<double>> inverse_cholesky_upper(const std::vector<double>& h, int64_t n, ThreadPool* pool) {
  std::vector<double> a(size_t(n * n));
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j < n; ++j) a[size_t(i * n + j)] = h[size_t((n - 1 - i) * n + (n - 1 - j))];
  TERN_RETURN_IF_ERROR(cholesky_lower(a.data(), n, pool));
  invert_lower(a.data(), n, pool);
  std::vector<double> u(size_t(n * n));
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j < n; ++j) u[size_t(i * n + j)] = a[size_t((n - 1 - i) * n + (n - 1 - j))];
  return u;
}

}  // namespace tern
