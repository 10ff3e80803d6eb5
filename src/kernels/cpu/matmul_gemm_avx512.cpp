// AVX-512 GEMM for prefill (m > 8): the blocking of matmul_gemm_avx2.cpp with 16-wide vectors:
//   for each block of kNC output columns and kKC inputs: pack w[nb:nb+kNC, kb:kb+kKC] as f32 panels
//   of 32 columns (panel[p][32], k-major, in L2); for every 8 rows of x and every panel: an 8x32
//   register tile, broadcast x, FMA with 2 panel vectors.
// 16 accumulators + 2 panel vectors + 1 broadcast of the 32 zmm registers; 16 FMAs per 10 loads.
#include <algorithm>
#include <cstring>

#include "kernels/cpu/matmul_avx2_util.h"
#include "kernels/cpu/matmul_gemm_blocking.h"
#include "kernels/cpu/matmul_avx512_util.h"
#include "kernels/cpu/matmul_kernels.h"

namespace tern::cpu {

namespace {

constexpr int kMR = 8;     // rows of x per register tile
constexpr int kNR = 32;    // output columns per register tile / packed panel
constexpr int64_t kKC = 256;  // k block: a 32-column panel is 32 KiB, stays in L1 across an 8-row sweep
constexpr int64_t kNC = 256;  // output columns per packed block: 256 KiB of L2

// y[0:MR, 0:cols] (+)= x[0:MR, 0:kc] · panel. On the first k block y starts from the bias (or 0).
template <int MR>
TERN_TARGET_AVX512 void micro_tile(const float* x, int64_t ldx, const float* panel, int64_t kc, float* y,
                                   int64_t ldy, int cols, const float* bias, bool first) {
  __m512 acc[MR][2];
#pragma GCC unroll 8
  for (int i = 0; i < MR; ++i) acc[i][0] = acc[i][1] = _mm512_setzero_ps();
  for (int64_t p = 0; p < kc; ++p) {
    const __m512 b0 = _mm512_load_ps(panel + p * kNR), b1 = _mm512_load_ps(panel + p * kNR + 16);
#pragma GCC unroll 8
    for (int i = 0; i < MR; ++i) {
      const __m512 xv = _mm512_set1_ps(*(x + i * ldx + p));
      acc[i][0] = _mm512_fmadd_ps(xv, b0, acc[i][0]);
      acc[i][1] = _mm512_fmadd_ps(xv, b1, acc[i][1]);
    }
  }
  // Spill the tile once (constant indices keep acc in registers inside the loop), then add it to y.
  alignas(64) float out[MR][kNR];
#pragma GCC unroll 8
  for (int i = 0; i < MR; ++i) {
    _mm512_store_ps(out[i], acc[i][0]);
    _mm512_store_ps(out[i] + 16, acc[i][1]);
  }
  for (int i = 0; i < MR; ++i) {
    float* yi = y + i * ldy;
    if (first) {
      for (int c = 0; c < cols; ++c) yi[c] = (bias ? bias[c] : 0.f) + out[i][c];
    } else {
      for (int c = 0; c < cols; ++c) yi[c] += out[i][c];
    }
  }
}

constexpr GemmTileFn kTiles[kMR + 1] = {nullptr,       micro_tile<1>, micro_tile<2>, micro_tile<3>, micro_tile<4>,
                                    micro_tile<5>, micro_tile<6>, micro_tile<7>, micro_tile<8>};

}  // namespace

void gemm_avx512(ExecContext& ctx, int thread, const MatmulArgs& a, int64_t m0, int64_t m1, int64_t n0, int64_t n1) {
  switch (a.w.dtype) {
    case DType::F32: return gemm_blocked<DType::F32, kMR, kNR, kKC, kNC>(ctx, thread, a, m0, m1, n0, n1, kTiles);
    case DType::F16: return gemm_blocked<DType::F16, kMR, kNR, kKC, kNC>(ctx, thread, a, m0, m1, n0, n1, kTiles);
    case DType::BF16: return gemm_blocked<DType::BF16, kMR, kNR, kKC, kNC>(ctx, thread, a, m0, m1, n0, n1, kTiles);
  }
}

}  // namespace tern::cpu
