#include "compress/dense_math.h"

#include <fmt/format.h>

#include <cmath>

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

Status cholesky_lower(double* a, int64_t n) {
  for (int64_t j = 0; j < n; ++j) {
    double* aj = a + j * n;
    double d = aj[j];
    for (int64_t k = 0; k < j; ++k) d -= aj[k] * aj[k];
    if (!(d > 0)) return Status::error(fmt::format("matrix is not positive definite (pivot {} = {})", j, d));
    const double ljj = std::sqrt(d);
    aj[j] = ljj;
    for (int64_t i = j + 1; i < n; ++i) {
      double* ai = a + i * n;
      double s = ai[j];
      for (int64_t k = 0; k < j; ++k) s -= ai[k] * aj[k];
      ai[j] = s / ljj;
    }
  }
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = i + 1; j < n; ++j) a[i * n + j] = 0;
  return Status::ok();
}

void invert_lower(double* l, int64_t n) {
  // Row i of X = L⁻¹: X[i][i] = 1/L[i][i]; X[i][:i] = -(Σ_k<i L[i][k] X[k][:k+1]) / L[i][i].
  // Rows above i are already X when row i is computed; row i's own L entries are read first.
  std::vector<double> row(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) {
    double* li = l + i * n;
    std::fill(row.begin(), row.begin() + i, 0.0);
    for (int64_t k = 0; k < i; ++k) {
      const double lik = li[k];
      const double* xk = l + k * n;
      for (int64_t c = 0; c <= k; ++c) row[size_t(c)] += lik * xk[c];
    }
    const double inv = 1.0 / li[i];
    for (int64_t c = 0; c < i; ++c) li[c] = -row[size_t(c)] * inv;
    li[i] = inv;
  }
}

Result<std::vector<double>> inverse_cholesky_upper(const std::vector<double>& h, int64_t n) {
  std::vector<double> a(size_t(n * n));
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j < n; ++j) a[size_t(i * n + j)] = h[size_t((n - 1 - i) * n + (n - 1 - j))];
  TERN_RETURN_IF_ERROR(cholesky_lower(a.data(), n));
  invert_lower(a.data(), n);
  std::vector<double> u(size_t(n * n));
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j < n; ++j) u[size_t(i * n + j)] = a[size_t((n - 1 - i) * n + (n - 1 - j))];
  return u;
}

}  // namespace tern
