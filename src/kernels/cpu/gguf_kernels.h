// CPU kernels for matmul against GGUF block-quantized weights (w.format == WeightFormat::Gguf).
// No kernel dequantizes a whole matrix: GEMV decodes one block (32 or 256 values) at a time into
// registers / a stack buffer and multiplies it with every row of x; GEMM decodes a panel of 16 weight
// rows x kKC inputs into per-thread scratch and runs a register-tiled f32 FMA kernel over it.
// ops/matmul_gguf.cpp picks the variant from ctx.cpu() and splits output columns over threads.
#pragma once

#include <cstdint>

#include "kernels/cpu/gguf_blocks.h"
#include "kernels/cpu/matmul_kernels.h"

namespace tern::cpu {

// Decodes one block of a format into f32 (block_elems values).
using GgufBlockDecoder = void (*)(const uint8_t* block, float* out);

// The scalar reference decoder, and the AVX2 one (the scalar one for formats without an AVX2 decoder).
GgufBlockDecoder gguf_decoder_scalar(GgufType t);
GgufBlockDecoder gguf_decoder_avx2(GgufType t);

// Output columns per GEMM panel; column ranges given to the GEMM should be multiples of it.
inline constexpr int64_t kGgufPanelCols = 16;

void gguf_gemv_scalar(const MatmulArgs& a, int64_t n0, int64_t n1);
void gguf_gemm_scalar(ExecContext& ctx, int thread, const MatmulArgs& a, int64_t m0, int64_t m1, int64_t n0,
                      int64_t n1);
void gguf_gemv_avx2(const MatmulArgs& a, int64_t n0, int64_t n1);
// Decode path (m <= 8): x quantized to int8 per 32 values, integer dot products (gguf_dot_avx2.cpp).
// Adds x's int8 rounding (~0.4% of each 32-group's max) on top of the weights' own error, as ggml does.
bool gguf_gemv_int8_supported(GgufType t);
void gguf_gemv_int8_avx2(const MatmulArgs& a, int64_t n0, int64_t n1);
void gguf_gemm_avx2(ExecContext& ctx, int thread, const MatmulArgs& a, int64_t m0, int64_t m1, int64_t n0,
                    int64_t n1);

// m = 1 decode fast path (gguf_gemv_m1_avx2.cpp): one row of x quantized once per call, before the
// threads split the weight rows: q [k] int8 per 32 values (scale max|x| / 127), d8 [k/32][8] that
// scale repeated, corr [k/32][8] = 8 · Σ q over columns 0-15 (lanes 0-3) and 16-31 (lanes 4-7).
struct GgufActs {
  const int8_t* q = nullptr;
  const float* d8 = nullptr;
  const int32_t* corr = nullptr;
  // K-quant mode (gguf_acts_k_prepare_avx2): q per 256 values, d256 [k/256] scales, integer sums of
  // q per 16 (bsum16 [k/16]) and per 32 (bsum32 [k/32]).
  const float* d256 = nullptr;
  const int16_t* bsum16 = nullptr;
  const int16_t* bsum32 = nullptr;
};
size_t gguf_acts_bytes(int64_t k);  // scratch for gguf_acts_prepare_avx2 (64-byte aligned)
GgufActs gguf_acts_prepare_avx2(const float* x, int64_t k, void* scratch);
bool gguf_gemv_m1_supported(GgufType t);
// y[0, n0:n1] for m = 1 (a.m must be 1); x from gguf_acts_prepare_avx2 of a.x.
void gguf_gemv_m1_avx2(const GgufActs& x, const MatmulArgs& a, int64_t n0, int64_t n1);
// The same for Q4_K / Q6_K (gguf_gemv_m1_k_avx2.cpp), x quantized per 256 (k a multiple of 256).
size_t gguf_acts_k_bytes(int64_t k);
GgufActs gguf_acts_k_prepare_avx2(const float* x, int64_t k, void* scratch);
bool gguf_gemv_m1_k_supported(GgufType t);
void gguf_gemv_m1_k_avx2(const GgufActs& x, const MatmulArgs& a, int64_t n0, int64_t n1);
// The same on AVX-512 BW + VNNI (gguf_gemv_m1_k_avx512.cpp): same x, bit-identical results.
void gguf_gemv_m1_k_avx512vnni(const GgufActs& x, const MatmulArgs& a, int64_t n0, int64_t n1);

// m > kGemvMaxRows with integer dot products (gguf_gemm_int8_avx512.cpp; AVX-512 VNNI, the prepare step
// AVX-512 too). x is quantized once per call to int8 per 32 values: q [m][k], d [m][k/32], and xd · Σ q
// per 32 (xs32 [m][k/32]) and per 16 (xs16 [m][k/16]). Each thread repacks 32 weight rows at a time
// into `panel` (gguf_gemm_int8_panel_bytes) and computes y[:, n0:n1] (n0 a multiple of 16).
struct GgufGemmActs {
  const int8_t* q = nullptr;
  const float* d = nullptr;
  const float* xs32 = nullptr;
  const float* xs16 = nullptr;
};
bool gguf_gemm_int8_supported(GgufType t);
size_t gguf_gemm_int8_acts_bytes(int64_t m, int64_t k);
GgufGemmActs gguf_gemm_int8_prepare_avx512(const float* x, int64_t m, int64_t k, void* scratch);
size_t gguf_gemm_int8_panel_bytes(const WeightMatrix& w);
void gguf_gemm_int8_avx512vnni(const GgufGemmActs& x, const MatmulArgs& a, void* panel, int64_t n0, int64_t n1);
// The same on plain AVX2 (gguf_gemm_int8_avx2.cpp: vpmaddubsw + vpmaddwd, Q8_0 via the sign trick).
GgufGemmActs gguf_gemm_int8_prepare_avx2(const float* x, int64_t m, int64_t k, void* scratch);
void gguf_gemm_int8_avx2(const GgufGemmActs& x, const MatmulArgs& a, void* panel, int64_t n0, int64_t n1);

// Rows of x the small-m kernel takes (batched decode at up to 16 in flight). Past 8 rows the int8 GEMM used to
// take over, but it repacks every 32-row weight panel per call, and at m = 16 that repack was 65-69% of the call
// (perf of bench_gguf --gemm-m 16 --threads 1, 2026-12-07: Q8_0 69%, Q4_K 65%, Q6_K 68%; the tile 30%); the
// small-m kernel reads the blocks as they lie (2048x2048 m = 16, one thread: see ops/matmul_gguf.cpp).
inline constexpr int64_t kGgufSmallmMaxRows = 16;

// Batched decode, m = 2..kGgufSmallmMaxRows, against Q4_0 / Q8_0 / Q4_K / Q5_K / Q6_K (gguf_gemv_smallm_*.cpp): each weight
// block is decoded once per call and dot-producted with all m rows of x (the m = 1 kernels run once per
// row decode every block m times). x is quantized once per call, row by row as the m = 1 kernels do
// (Q4_K / Q5_K / Q6_K: gguf_acts_k_prepare_avx2, per 256; Q4_0 / Q8_0: gguf_acts_prepare_avx2, per 32, its
// codes then stored + 128 as u8 so that the weights carry the sign: u8 x × s8 (nibble − 8, Q8_0's int8)), plus tables the
// tile reads with one load per 4 rows of x ("quad" q = rows 4q..4q+3, rows past m are zero; quads = ⌈m/4⌉):
//   dxq  [blocks][quads][16] f32: x's scale, lane 4L + i -> row 4q + i; Q4_K / Q6_K blocks of 256
//        (every L the same), Q4_0 / Q8_0 pairs of 32-blocks (L = 0, 1 the first block, L = 2, 3 the second);
//   mins [k/256][quads][32] i16 (Q4_K / Q5_K): lane pair (4L + i) = x's Σ codes over sub-blocks 2L, 2L + 1 of row 4q + i.
// Needs AVX2 (the prepare); k a multiple of 256 (K-quants) or 64 (Q4_0 / Q8_0).
struct GgufSmallmActs {
  GgufType type{};
  int64_t m = 0;
  GgufActs row[kGgufSmallmMaxRows];  // per row of x (Q4_0 / Q8_0: q holds the u8 codes + 128)
  int64_t quads = 0;                  // the tables' quads per block (⌈m/4⌉ of the prepare; a row view keeps it)
  const float* dxq = nullptr;
  const int16_t* mins = nullptr;
};
// Rows 4v.. of x as their own activations (quad v of the tables on), for a kernel that runs the rows of
// one call in several passes: the per-row views move down by 4v, the tables by quad v (16 dxq floats and
// 32 mins per quad).
inline GgufSmallmActs gguf_smallm_rows_from(const GgufSmallmActs& x, int v) {
  GgufSmallmActs u = x;
  u.m = x.m - 4 * v;
  for (int64_t i = 0; i < u.m; ++i) u.row[i] = x.row[i + 4 * v];
  u.dxq = x.dxq + 16 * v;
  if (x.mins) u.mins = x.mins + 32 * v;
  return u;
}
// Q8_0 streams 2.1 bytes per weight (Q4_0: 0.56), and at 8 rows of x the kernels fell behind memory with the
// m = 1 prefetch distance of 320 bytes: ~2 KB ahead (about one weight row at k = 2048) measured best
// (bench_gguf_smallm --threads 1 --cpu-time, 2048x2048 m = 8, AVX-512: 676 µs at 320, 558 at 640, 487 at 2048,
// 488 at 4096; AVX2: 810 -> 735 µs).
constexpr int64_t kGgufSmallmQ8PrefetchBytes = 2048;
bool gguf_gemv_smallm_supported(GgufType t, int64_t k);
size_t gguf_smallm_acts_bytes(GgufType t, int64_t m, int64_t k);
GgufSmallmActs gguf_smallm_prepare(GgufType t, const float* x, int64_t m, int64_t k, void* scratch);
// y[0:m, n0:n1]; a.m == x.m. Scalar reference (exact integer block sums, double accumulation), AVX2
// (vpmaddubsw + vpmaddwd) and AVX-512 VNNI (vpdpbusd / vpdpwssd on zmm).
void gguf_gemv_smallm_ref(const GgufSmallmActs& x, const MatmulArgs& a, int64_t n0, int64_t n1);
void gguf_gemv_smallm_avx2(const GgufSmallmActs& x, const MatmulArgs& a, int64_t n0, int64_t n1);
void gguf_gemv_smallm_avx512vnni(const GgufSmallmActs& x, const MatmulArgs& a, int64_t n0, int64_t n1);

// Row gather for embedding tables stored in a GGUF block format: out[i, :] = decode(table[ids[i], :]).
void gguf_embedding(const WeightMatrix& table, const int32_t* ids, int64_t m, float* out);

}  // namespace tern::cpu
