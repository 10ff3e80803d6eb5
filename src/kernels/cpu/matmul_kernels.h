// The CPU matmul kernel table behind ops/matmul.h. Every ISA variant lives in its own file
// (matmul_ref.cpp, matmul_gemv_avx2.cpp, matmul_gemm_avx2.cpp, ...) with function-level
// __attribute__((target(...))), so this header and its callers stay plain x86-64.
// ops/matmul.cpp validates shapes, picks one variant from ctx.cpu() and splits the work over threads.
#pragma once

#include <cstdint>

#include "core/exec_context.h"
#include "core/weight_matrix.h"

namespace tern::cpu {

// One matmul call: y[m, n] = x[m, k] · wᵀ (+ bias[n]); n = w.rows, k = w.cols.
struct MatmulArgs {
  const float* x = nullptr;  // [m, k]
  int64_t m = 0;
  WeightMatrix w;            // [n, k]
  float* y = nullptr;        // [m, n]
  const float* bias = nullptr;  // [n] or null
};

// GEMV (m <= kGemvMaxRows): computes y[:, n0:n1] by streaming each weight row once for all m rows of x.
using GemvFn = void (*)(const MatmulArgs& a, int64_t n0, int64_t n1);
// GEMM: computes y[m0:m1, n0:n1]; packs weight tiles into ctx.scratch(thread, ...).
using GemmFn = void (*)(ExecContext& ctx, int thread, const MatmulArgs& a, int64_t m0, int64_t m1, int64_t n0,
                        int64_t n1);

inline constexpr int64_t kGemvMaxRows = 8;

void gemv_scalar(const MatmulArgs& a, int64_t n0, int64_t n1);
void gemm_scalar(ExecContext& ctx, int thread, const MatmulArgs& a, int64_t m0, int64_t m1, int64_t n0, int64_t n1);

void gemv_avx2(const MatmulArgs& a, int64_t n0, int64_t n1);
void gemm_avx2(ExecContext& ctx, int thread, const MatmulArgs& a, int64_t m0, int64_t m1, int64_t n0, int64_t n1);

// Small-m GEMM (kGemvMaxRows < m <= kSmallMMaxRows), BF16 weights only: computes y[:, n0:n1]
// reading every weight row in place (no packing); see matmul_smallm_avx2.cpp.
inline constexpr int64_t kSmallMMaxRows = 64;
void smallm_avx2(ExecContext& ctx, int thread, const MatmulArgs& a, int64_t n0, int64_t n1);

void gemv_avx512(const MatmulArgs& a, int64_t n0, int64_t n1);

// BF16 weights, m = 2..8 (matmul_gemv_evenodd_avx512.cpp): the GEMV with shuffle-free widening. x is
// first permuted into xp (evenodd_permute_x_avx512; [m, evenodd_xp_stride(k)] floats, ops/matmul.cpp
// does it once per thread and input, in the thread's scratch), which gemv_evenodd_avx512 then reads.
inline constexpr int64_t kEvenOddMinRows = 2;
// k rounded up to 32, plus 16 floats so that rows of xp are not a multiple of 4 KiB apart.
inline int64_t evenodd_xp_stride(int64_t k) { return (k + 31) / 32 * 32 + 16; }
void evenodd_permute_x_avx512(const float* x, int64_t m, int64_t k, float* xp);
void gemv_evenodd_avx512(const MatmulArgs& a, const float* xp, int64_t n0, int64_t n1);
void gemm_avx512(ExecContext& ctx, int thread, const MatmulArgs& a, int64_t m0, int64_t m1, int64_t n0, int64_t n1);

// BF16 weights only: x is rounded to bf16 per tile and multiplied with vdpbf16ps / tdpbf16ps
// (f32 accumulation), so results carry bf16 input rounding of x (~3 significant digits).
void gemm_avx512bf16(ExecContext& ctx, int thread, const MatmulArgs& a, int64_t m0, int64_t m1, int64_t n0,
                     int64_t n1);
void gemm_amx(ExecContext& ctx, int thread, const MatmulArgs& a, int64_t m0, int64_t m1, int64_t n0, int64_t n1);

}  // namespace tern::cpu
