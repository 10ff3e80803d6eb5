// Small dense linear algebra the quantization methods need, on f32/f64 row-major buffers.
// GEMMs go through the matmul front door (threads, run-time ISA); factorizations are in double.
#pragma once

#include <cstdint>
#include <vector>

#include "core/status.h"
#include "core/exec_context.h"
#include "core/thread_pool.h"

namespace tern {

// y [m, n] = x [m, k] · wᵀ, w: f32 [n, k].
void matmul_f32(ExecContext& ctx, const float* x, int64_t m, const float* w, int64_t n, int64_t k, float* y);

// acc [k, k] += xᵀ x for x: [m, k] (f32 products, accumulated into double).
void accumulate_gram(ExecContext& ctx, const float* x, int64_t m, int64_t k, double* acc);

// In place: a [n, n] symmetric positive definite -> its lower Cholesky factor L (a = L Lᵀ; the
// upper triangle is zeroed). Error when a pivot is not positive. pool: threads for large n (null: one).
Status cholesky_lower(double* a, int64_t n, ThreadPool* pool = nullptr);

// In place: l [n, n] lower triangular -> l⁻¹ (lower triangular).
void invert_lower(double* l, int64_t n, ThreadPool* pool = nullptr);

// The upper triangular U with H⁻¹ = Uᵀ U (what GPTQ walks through), from SPD h [n, n], without
// forming H⁻¹: with J the reversal, J H J = L Lᵀ gives H = (J L J)(J L J)ᵀ, so U = J L⁻¹ J.
Result<std::vector<double>> inverse_cholesky_upper(const std::vector<double>& h, int64_t n,
                                                   ThreadPool* pool = nullptr);

// The lazy batch update GPTQ and SparseGPT make after each block of columns [i1, i2): for rows
// w + t·n (t < nt) of a [nt, n] tile, w[j] -= err[t, i - i1] · u[i, j] for every i in the block and every
// column j >= i2 after it. err: [nt, bs] the block's scaled errors; u: [n, n] row-major. Rows whose
// error is exactly 0 (a kept weight of SparseGPT) are skipped.
inline void obs_lazy_block_update(double* w, int64_t nt, int64_t n, const double* u, const double* err, int64_t bs,
                                  int64_t i1, int64_t i2) {
  for (int64_t i = i1; i < i2; ++i) {
    const double* ui = u + i * n;
    for (int64_t t = 0; t < nt; ++t) {
      const double e = err[size_t(t * bs + i - i1)];
      if (e == 0) continue;
      double* wt = w + t * n;
      for (int64_t j = i2; j < n; ++j) wt[j] -= e * ui[j];
    }
  }
}

}  // namespace tern
