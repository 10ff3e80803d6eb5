// CPU kernels for quantized weights (core/weight_matrix.h formats), behind ops/matmul.cpp.
// Stored layouts (built by formats/quant/pack_weights.h at load time, never by the kernels):
//   Int8Channel: int8 codes [n, k] row-major, scales [n]: w = scale[r] * q.
//   Int4Group:   per row, k/32 blocks of 16 bytes; byte j of a block holds column j in its low nibble and
//                column j + 16 in its high nibble (so one shift + mask yields 32 codes in column order);
//                codes 0..15; scales [n, k/group]; zeros [n, k/group] zero points in code units, or null
//                for symmetric (zero 8): w = scale * (q - zero).
//   Fp8E4M3:     e4m3 bytes [n, k] (core/fp8.h; never NaN: the packer rejects it), scales [n].
// Activations are prepared once per call (QuantActs) and shared by every thread:
//   W8A16 / FP8: x stays f32. W8A16 (any m: the decode GEMV and the GEMM) also gets x as int16 per block of
//   kX16Block columns (scale max|x| / 32767 over the block; relative rounding <= 1/65534 of the
//   block's max, below bf16's 1/512): the integer kernels multiply int8 w by int16 x with vpmaddwd /
//   vpdpwssd (16 or 32 products per instruction, no widening to f32) and convert once per block.
//   W8A8: x quantized to int8 per row (token), scale max|x| / 127.
//   Int4Group: x quantized to int8 per group of the weight (scale max|x| / 127 over the group), so every
//   group's dot product is an exact integer sum: y = Σ_g s_g · xd_g · (Σ q·xq − zero_g · Σ xq).
// A kernel computes y[m0:m1, n0:n1] for any m: weight rows are walked in blocks small enough to stay in
// L1/L2 while every 4-row chunk of x passes over them, so the same code is the GEMV (m <= 8: one pass
// over the weights) and the cache-blocked GEMM; no weights are ever dequantized into memory.
#pragma once

#include <cstdint>

#include "core/weight_matrix.h"

namespace tern::cpu {

// W8A16's int16 x: columns per scale. Per int32 lane a block adds at most 64 / 8 products of
// |w| <= 128 and |x| <= 32767 (< 2^26), so a block's integer sum never overflows. 64, not more: a
// tensor-parallel rank's row-parallel slice (o_proj, down_proj: k / T columns, e.g. 1408 / 2 = 704)
// must start and end on block boundaries, or its x blocks (and so their scales) differ from the single
// process's and greedy tokens can differ under --tp.
inline constexpr int64_t kX16Block = 64;
inline constexpr int64_t kX16MaxRows = 8;  // the decode GEMV's rows of x

struct QuantActs {
  const float* x = nullptr;    // [m, k] f32
  int64_t m = 0;
  const int16_t* x16 = nullptr;  // W8A16: [m, k] int16 codes per kX16Block columns
  const float* xd16 = nullptr;   // [m, ceil(k / kX16Block)] their scales
  const int8_t* xq = nullptr;  // [m, k] int8 (W8A8, Int4Group)
  const float* xd = nullptr;   // W8A8: [m]; Int4Group: [m, k / group] quantization scales of x
  const float* xs = nullptr;   // Int4Group: [m, k / group] xd · Σ xq over the group (the zero-point term)
  // Int4Group with group % 64 == 0: xq [m, k] with each 64-column chunk reordered as columns
  // 0-15, 32-47, 16-31, 48-63. The low nibbles of 32 packed bytes (two blocks) are columns 0-15 and
  // 32-47 of the chunk, the high nibbles 16-31 and 48-63: one load, one shift, two masks per 64 codes.
  const int8_t* xq_pairs = nullptr;
};

// y: [m, n] (row stride n = w.rows); bias: [n] or null.
using QuantFn = void (*)(const QuantActs& a, const WeightMatrix& w, float* y, const float* bias, int64_t m0,
                         int64_t m1, int64_t n0, int64_t n1);

// Bytes of scratch quantize_acts needs for this call, and the preparation itself (scalar, exact
// round-to-nearest-even, shared by every ISA so that all kernels see the same int8 x).
size_t quant_acts_bytes(const WeightMatrix& w, int64_t m);
QuantActs quant_acts_prepare(const WeightMatrix& w, const float* x, int64_t m, void* scratch);
// The same, bit for bit, with AVX2 (quant_acts_avx2.cpp); the caller checks the CPU.
QuantActs quant_acts_prepare_avx2(const WeightMatrix& w, const float* x, int64_t m, void* scratch);

// Scalar reference: the contract every other variant is tested against.
void quant_w8a16_scalar(const QuantActs&, const WeightMatrix&, float*, const float*, int64_t, int64_t, int64_t, int64_t);
void quant_w8a8_scalar(const QuantActs&, const WeightMatrix&, float*, const float*, int64_t, int64_t, int64_t, int64_t);
void quant_int4_scalar(const QuantActs&, const WeightMatrix&, float*, const float*, int64_t, int64_t, int64_t, int64_t);
void quant_fp8_scalar(const QuantActs&, const WeightMatrix&, float*, const float*, int64_t, int64_t, int64_t, int64_t);
// W8A16 on the int16 x (a.x16): exact int32 sums per block, y = scale · Σ_b xd16_b · sum_b + bias.
void quant_w8a16_x16_scalar(const QuantActs&, const WeightMatrix&, float*, const float*, int64_t, int64_t, int64_t,
                            int64_t);

// AVX2 + FMA + F16C: int8 products with vpmaddubsw/vpmaddwd, f32 FMA after in-register widening.
void quant_w8a16_avx2(const QuantActs&, const WeightMatrix&, float*, const float*, int64_t, int64_t, int64_t, int64_t);
void quant_w8a8_avx2(const QuantActs&, const WeightMatrix&, float*, const float*, int64_t, int64_t, int64_t, int64_t);
void quant_int4_avx2(const QuantActs&, const WeightMatrix&, float*, const float*, int64_t, int64_t, int64_t, int64_t);
void quant_fp8_avx2(const QuantActs&, const WeightMatrix&, float*, const float*, int64_t, int64_t, int64_t, int64_t);

// Their decode path (m1 - m0 <= 8, quant_gemv_avx2.cpp): several far-apart row streams at once,
// prefetched, each weight byte read once for all rows of x. Called by the *_avx2 entry points.
void quant_gemv_w8a16_avx2(const QuantActs&, const WeightMatrix&, float*, const float*, int64_t, int64_t, int64_t,
                           int64_t);
void quant_gemv_w8a8_avx2(const QuantActs&, const WeightMatrix&, float*, const float*, int64_t, int64_t, int64_t,
                          int64_t);
void quant_gemv_int4_avx2(const QuantActs&, const WeightMatrix&, float*, const float*, int64_t, int64_t, int64_t,
                          int64_t);

// W8A16 decode on the int16 x (m1 - m0 <= kX16MaxRows; quant_gemv_w8a16.cpp): int8 weights widened to
// int16 (vpmovsxbw) and multiplied by x16 with vpmaddwd (AVX2) or vpdpwssd (AVX-VNNI ymm, AVX-512 VNNI
// zmm), R far-apart row streams as the GEMV above; integer sums equal quant_w8a16_x16_scalar's.
void quant_gemv_w8a16_x16_avx2(const QuantActs&, const WeightMatrix&, float*, const float*, int64_t, int64_t, int64_t,
                               int64_t);
void quant_gemv_w8a16_x16_avxvnni(const QuantActs&, const WeightMatrix&, float*, const float*, int64_t, int64_t,
                                  int64_t, int64_t);
void quant_gemv_w8a16_x16_avx512vnni(const QuantActs&, const WeightMatrix&, float*, const float*, int64_t, int64_t,
                                     int64_t, int64_t);

// Int4Group with x in pair order (a.xq_pairs), one row i of x: y[i, n0:n1] (quant_gemv_int4_avx2.cpp).
void quant_gemv_int4_m1_avx2(const QuantActs&, const WeightMatrix&, float*, const float*, int64_t i, int64_t n0,
                             int64_t n1);

// The same for 2..8 rows of x, group 128 (quant_gemv_int4_batch_avx2.cpp).
void quant_gemv_int4_batch_avx2(const QuantActs&, const WeightMatrix&, float*, const float*, int64_t m0, int64_t m1,
                                int64_t n0, int64_t n1);

// Rows r0..r0+rows of an Int8Channel or Int4Group matrix as f32 (scales and zero points applied):
// dst [rows, k]. The prefill path widens panels of weight rows into per-thread scratch for the dense GEMM.
void quant_widen_rows_avx2(const WeightMatrix& w, int64_t r0, int64_t rows, float* dst);

// AVX-VNNI (VEX vpdpbusd, 256-bit) and AVX-512-VNNI (512-bit vpdpbusd).
void quant_w8a8_avxvnni(const QuantActs&, const WeightMatrix&, float*, const float*, int64_t, int64_t, int64_t, int64_t);
void quant_int4_avxvnni(const QuantActs&, const WeightMatrix&, float*, const float*, int64_t, int64_t, int64_t, int64_t);
void quant_w8a8_avx512vnni(const QuantActs&, const WeightMatrix&, float*, const float*, int64_t, int64_t, int64_t,
                           int64_t);
void quant_int4_avx512vnni(const QuantActs&, const WeightMatrix&, float*, const float*, int64_t, int64_t, int64_t,
                           int64_t);

// GEMMs for m > kGemvMaxRows (prefill chunks, batched decode): y[0:a.m, n0:n1] (n0 a multiple of 32),
// with every thread repacking 32 weight rows at a time into `panel` (its own scratch of *_panel_bytes):
// register tiles of 4 rows of x × 32 (AVX-512) or 16 (AVX2) columns, integer dot products, no f32
// weights. W8A16 (quant_gemm_w8a16.cpp): the int16 x of quant_acts_prepare (any m), k even; the integer
// block sums equal quant_w8a16_x16_scalar's. Int4Group (quant_gemm_int4.cpp): the int8 x per group; the
// integer group sums equal quant_int4_scalar's. Only the f32 order of the per-block terms differs.
using QuantGemmFn = void (*)(const QuantActs& a, const WeightMatrix& w, float* y, const float* bias, int64_t n0,
                             int64_t n1, void* panel);
size_t quant_gemm_w8a16_panel_bytes(const WeightMatrix& w);
void quant_gemm_w8a16_avx2(const QuantActs&, const WeightMatrix&, float*, const float*, int64_t, int64_t, void*);
void quant_gemm_w8a16_avx512vnni(const QuantActs&, const WeightMatrix&, float*, const float*, int64_t, int64_t,
                                 void*);
size_t quant_gemm_int4_panel_bytes(const WeightMatrix& w);
void quant_gemm_int4_avx2(const QuantActs&, const WeightMatrix&, float*, const float*, int64_t, int64_t, void*);
void quant_gemm_int4_avx512vnni(const QuantActs&, const WeightMatrix&, float*, const float*, int64_t, int64_t,
                                void*);

// AMX-INT8 W8A8 GEMM (tdpbssd on 16x64 int8 tiles); m0..m1 should span >= 16 rows to pay off.
void quant_w8a8_amx(const QuantActs&, const WeightMatrix&, float*, const float*, int64_t, int64_t, int64_t, int64_t);

}  // namespace tern::cpu
