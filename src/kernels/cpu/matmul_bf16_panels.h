// Bf16Panels weights (core/weight_matrix.h): bf16 packed once at load into the layout the bf16-dot
// GEMM's tile reads (matmul_gemm_avx512bf16.cpp), so a prefill no longer transposes every weight
// into pairs on every call, and the packed copy replaces the stored matrix (decode reads it too).
//   panel p (rows 32p .. 32p + 31 of w, zero past w.rows): kq = ceil(cols / 2) rows of 32 u32 words,
//   word (q, c) = bf16 pair (w[32p + c][2q], w[32p + c][2q + 1]) (low half first; zero past cols).
// Kernels take column ranges starting at a multiple of 32 (ops/matmul.cpp splits by 32).
#pragma once

#include <cstddef>
#include <cstdint>

#include "kernels/cpu/matmul_kernels.h"

namespace tern::cpu {

inline constexpr int64_t kBf16PanelRows = 32;
inline int64_t bf16_panel_count(int64_t rows) { return (rows + kBf16PanelRows - 1) / kBf16PanelRows; }
inline int64_t bf16_panel_words(int64_t cols) { return (cols + 1) / 2 * kBf16PanelRows; }  // u32 per panel
inline size_t bf16_panels_bytes(int64_t rows, int64_t cols) {
  return size_t(bf16_panel_count(rows)) * size_t(bf16_panel_words(cols)) * 4;
}

// Panels [p0, p1) of w (dense BF16) into dst (the whole packed matrix: panel p at p * bf16_panel_words).
void pack_bf16_panels_scalar(const WeightMatrix& w, int64_t p0, int64_t p1, uint32_t* dst);
void pack_bf16_panels_avx512bf16(const WeightMatrix& w, int64_t p0, int64_t p1, uint32_t* dst);  // same bits

// a.w is Bf16Panels. GEMV (m <= kGemvMaxRows), x f32: y[:, n0:n1].
void gemv_bf16_panels_scalar(const MatmulArgs& a, int64_t n0, int64_t n1);
void gemv_bf16_panels_avx512(const MatmulArgs& a, int64_t n0, int64_t n1);
// GEMM: y[m0:m1, n0:n1]. The scalar one keeps x f32; the AVX512-BF16 one rounds x to bf16 (vdpbf16ps).
void gemm_bf16_panels_scalar(ExecContext& ctx, int thread, const MatmulArgs& a, int64_t m0, int64_t m1, int64_t n0,
                             int64_t n1);
void gemm_bf16_panels_avx512bf16(ExecContext& ctx, int thread, const MatmulArgs& a, int64_t m0, int64_t m1,
                                 int64_t n0, int64_t n1);

}  // namespace tern::cpu
