// CPU kernels for sparse weights (WeightFormat::SparseBitmask, core/weight_matrix.h), behind
// ops/matmul_sparse.cpp. A row r keeps its non-zeros in column order at data + row_offsets[r]; bit
// (j % 8) of mask byte j / 8 of the row says whether column j holds the next one. Values are BF16, or
// I8 with one f32 scale per row (w = scales[r] * q).
//
// The kernels read only the non-zeros and the mask (50% bf16: 0.5625 of the dense bytes; 2:4 int8:
// 0.625) and either widen them into dense vectors in registers, lined up with x, or (2:4 int8) gather
// x to them:
//   AVX-512 VBMI2: bf16: vpexpandw straight from memory, widened in place to f32 (sparse_avx512.cpp).
//                  int8, any mask (+ VNNI): vpexpandb into the columns' bytes, vpmovsxbw, and vpdpwssd
//                  against x rounded to int16 per block of 256 columns (sparse_x16.h), converted once
//                  per block.
//                  int8, 2:4 rows (+ VBMI, VNNI): the kept weights stay packed; per 128 columns the mask
//                  is decoded in registers into the 64 kept columns (vpmultishiftqb, vpermb table), and
//                  per row of x two vpermt2w gather the int16 x of those columns for two vpdpwssd: 14
//                  vector instructions per 80 bytes at m = 1 (dense W8A16: 12 per 128), no vpexpandb and
//                  no popcount chain; ~25 GB/s of its bytes from L2 on one Zen 5 core, about one core's
//                  DRAM rate, so it is near memory-bound where the expanding kernel (~19) was not
//                  (sparse24_avx512.cpp; rows that are not 2:4 fall back to the expanding kernel).
//   AVX2:          one 32-byte vpshufb control per mask byte (256-entry tables), applied to the next 8
//                  (bf16) or 8 (int8) stored values broadcast to both 128-bit lanes; 2:4 int8 rows
//                  instead gather int16 x to the kept weights and use vpmaddwd (sparse24_avx2.cpp).
// Decode (m <= 8) keeps every weight row's values in registers for all m rows of x; prefill expands
// panels of rows to f32 (sparse_expand_rows_*) for the dense GEMM.
#pragma once

#include <cstdint>

#include "core/weight_matrix.h"

namespace tern::cpu {

// y[0:m, n0:n1] = x[0:m, :] · w[n0:n1, :]ᵀ (+ bias); y row stride w.rows. Any m (chunks of 8 rows).
using SparseFn = void (*)(const float* x, int64_t m, const WeightMatrix& w, float* y, const float* bias, int64_t n0,
                          int64_t n1);
// Rows r0..r0+rows of w as dense f32 (scales applied): dst [rows, w.cols].
using SparseExpandFn = void (*)(const WeightMatrix& w, int64_t r0, int64_t rows, float* dst);

// Scalar reference: the contract every other variant is tested against.
void sparse_gemv_scalar(const float* x, int64_t m, const WeightMatrix& w, float* y, const float* bias, int64_t n0,
                        int64_t n1);
void sparse_expand_rows_scalar(const WeightMatrix& w, int64_t r0, int64_t rows, float* dst);

// AVX2 + FMA (+ popcnt). sparse_gemv_avx2 sends int8 to sparse24_gemv_i8_avx2, everything else to the
// per-byte-table kernel sparse_gemv_bitmask_avx2 (any mask, bf16 or int8 on f32 x).
void sparse_gemv_avx2(const float* x, int64_t m, const WeightMatrix& w, float* y, const float* bias, int64_t n0,
                      int64_t n1);
void sparse_gemv_bitmask_avx2(const float* x, int64_t m, const WeightMatrix& w, float* y, const float* bias,
                              int64_t n0, int64_t n1);
// int8 (w.cols >= 32): rows that keep 2 of every 4 columns (over their full 32-column steps, checked per
// row) on int16 x (sparse_x16.h) with x gathered to the kept weights; other rows via the bitmask kernel.
void sparse24_gemv_i8_avx2(const float* x, int64_t m, const WeightMatrix& w, float* y, const float* bias,
                           int64_t n0, int64_t n1);
void sparse_expand_rows_avx2(const WeightMatrix& w, int64_t r0, int64_t rows, float* dst);

// AVX-512 F/BW/VL + VBMI2 + VNNI (+ VBMI for the 2:4 kernel). sparse_gemv_avx512 sends int8 to
// sparse24_gemv_i8_avx512 when the CPU has VBMI, everything else to the expanding kernel
// sparse_gemv_bitmask_avx512 (any mask, bf16 or int8).
void sparse_gemv_avx512(const float* x, int64_t m, const WeightMatrix& w, float* y, const float* bias, int64_t n0,
                        int64_t n1);
void sparse_gemv_bitmask_avx512(const float* x, int64_t m, const WeightMatrix& w, float* y, const float* bias,
                                int64_t n0, int64_t n1);
// int8, needs VBMI: rows that keep 2 of every 4 columns (over their full 128-column steps, checked per
// row as it goes) on int16 x gathered to the kept weights; other rows via the bitmask kernel.
void sparse24_gemv_i8_avx512(const float* x, int64_t m, const WeightMatrix& w, float* y, const float* bias,
                             int64_t n0, int64_t n1);
void sparse_expand_rows_avx512(const WeightMatrix& w, int64_t r0, int64_t rows, float* dst);

}  // namespace tern::cpu
