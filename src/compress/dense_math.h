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

}  // namespace tern
