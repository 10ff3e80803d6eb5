// W8A16 GEMM for m > kX16MaxRows (prefill chunks, batched decode at > 8 in flight): the decode GEMV's
// numerics (x as int16 per kX16Block columns, exact int32 block sums, one f32 multiply-add per block;
// quant_w8a16_x16_scalar is the reference) with register tiles over rows of x and weight columns, in
// place of widening every weight to f32 for the dense GEMM (the f32 panel path, ~3 instructions per
// weight before the FMA). Why int16 and not int8 x: W8A16 is tern's accuracy-first int8 format; x's
// int16 rounding (<= 1/65534 of a block's max) stays far below bf16's, int8 x (1/254) would not.
//   Panel (quant_gemm_panel.h): 32 weight rows as int16 pairs [k/2][32 columns][2], per call, in
//   per-thread scratch (128 · k bytes: 256 KiB at k = 2048, L2-resident), reused by every row of x.
//   AVX-512 VNNI tile: 4 rows of x × 32 columns; per k pair two zmm loads, one broadcast of x's pair
//   per row and vpdpwssd (32 products); int32 block sums -> f32 once per 64 columns.
//   AVX2 tile: 4 rows × 16 columns; vpmaddwd + vpaddd (16 products per 2 instructions).
// Block sums never overflow: 32 pairs · 2 · 128 · 32767 < 2^28.
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"

#include "kernels/cpu/quant_gemm_panel.h"

namespace tern::cpu {

namespace {

constexpr int kMR = 4;  // rows of x per tile

inline int32_t x_pair(const int16_t* x) {
  int32_t v;
  std::memcpy(&v, x, 4);
  return v;
}

// y[i0 .. i0+MR, c0 .. c0+cols) from one panel.
template <int MR>
TERN_TARGET_AVX512VNNI void tile_avx512(const QuantActs& a, const WeightMatrix& w, float* y, const float* bias,
                                        int64_t i0, int64_t c0, int cols, const uint8_t* panel) {
  const int64_t k = w.cols, nb = (k + kX16Block - 1) / kX16Block;
  __m512 c[MR][2];
  for (int i = 0; i < MR; ++i) c[i][0] = c[i][1] = _mm512_setzero_ps();
  const int16_t* xr[MR];
  for (int i = 0; i < MR; ++i) xr[i] = a.x16 + (i0 + i) * k;
  for (int64_t b = 0; b < nb; ++b) {
    const int64_t j0 = b * kX16Block, pairs = std::min<int64_t>(kX16Block, k - j0) / 2;
    const uint8_t* p = panel + size_t(j0 / 2) * kUnitStride;
    __m512i acc[MR][2];
    for (int i = 0; i < MR; ++i) acc[i][0] = acc[i][1] = _mm512_setzero_si512();
#pragma GCC unroll 8
    for (int64_t t = 0; t < pairs; ++t) {
      const __m512i w0 = _mm512_loadu_si512(p + t * kUnitStride), w1 = _mm512_loadu_si512(p + t * kUnitStride + 64);
#pragma GCC unroll 4
      for (int i = 0; i < MR; ++i) {
        const __m512i xb = _mm512_set1_epi32(x_pair(xr[i] + j0 + 2 * t));
        acc[i][0] = _mm512_dpwssd_epi32(acc[i][0], w0, xb);
        acc[i][1] = _mm512_dpwssd_epi32(acc[i][1], w1, xb);
      }
    }
#pragma GCC unroll 4
    for (int i = 0; i < MR; ++i) {
      const __m512 xd = _mm512_set1_ps(a.xd16[(i0 + i) * nb + b]);
      c[i][0] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(acc[i][0]), xd, c[i][0]);
      c[i][1] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(acc[i][1]), xd, c[i][1]);
    }
  }
  const __mmask16 k0 = cols >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << cols) - 1);
  const __mmask16 k1 = cols >= 32 ? __mmask16(0xFFFF) : cols <= 16 ? 0 : __mmask16((1u << (cols - 16)) - 1);
  const __m512 s0 = _mm512_maskz_loadu_ps(k0, w.scales + c0), s1 = _mm512_maskz_loadu_ps(k1, w.scales + c0 + 16);
  const __m512 b0 = bias ? _mm512_maskz_loadu_ps(k0, bias + c0) : _mm512_setzero_ps();
  const __m512 b1 = bias ? _mm512_maskz_loadu_ps(k1, bias + c0 + 16) : _mm512_setzero_ps();
  for (int i = 0; i < MR; ++i) {
    float* yr = y + (i0 + i) * w.rows + c0;
    _mm512_mask_storeu_ps(yr, k0, _mm512_fmadd_ps(c[i][0], s0, b0));
    _mm512_mask_storeu_ps(yr + 16, k1, _mm512_fmadd_ps(c[i][1], s1, b1));
  }
}

// y[i0 .. i0+MR, c0 + 16h .. +16) from half h of one panel. The f32 totals live in memory (touched once
// per block): 16 ymm hold the 8 int32 sums, the weights and x.
template <int MR>
TERN_TARGET_AVX2 void tile_avx2(const QuantActs& a, const WeightMatrix& w, float* y, const float* bias, int64_t i0,
                                int64_t c0, int h, int cols, const uint8_t* panel) {
  const int64_t k = w.cols, nb = (k + kX16Block - 1) / kX16Block;
  alignas(32) float tot[MR][16] = {};
  const int16_t* xr[MR];
  for (int i = 0; i < MR; ++i) xr[i] = a.x16 + (i0 + i) * k;
  for (int64_t b = 0; b < nb; ++b) {
    const int64_t j0 = b * kX16Block, pairs = std::min<int64_t>(kX16Block, k - j0) / 2;
    const uint8_t* p = panel + size_t(j0 / 2) * kUnitStride + h * 64;
    __m256i acc[MR][2];
    for (int i = 0; i < MR; ++i) acc[i][0] = acc[i][1] = _mm256_setzero_si256();
#pragma GCC unroll 4
    for (int64_t t = 0; t < pairs; ++t) {
      const __m256i w0 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p + t * kUnitStride));
      const __m256i w1 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p + t * kUnitStride + 32));
#pragma GCC unroll 4
      for (int i = 0; i < MR; ++i) {
        const __m256i xb = _mm256_set1_epi32(x_pair(xr[i] + j0 + 2 * t));
        acc[i][0] = _mm256_add_epi32(acc[i][0], _mm256_madd_epi16(w0, xb));
        acc[i][1] = _mm256_add_epi32(acc[i][1], _mm256_madd_epi16(w1, xb));
      }
    }
#pragma GCC unroll 4
    for (int i = 0; i < MR; ++i) {
      const __m256 xd = _mm256_set1_ps(a.xd16[(i0 + i) * nb + b]);
      _mm256_store_ps(tot[i], _mm256_fmadd_ps(_mm256_cvtepi32_ps(acc[i][0]), xd, _mm256_load_ps(tot[i])));
      _mm256_store_ps(tot[i] + 8, _mm256_fmadd_ps(_mm256_cvtepi32_ps(acc[i][1]), xd, _mm256_load_ps(tot[i] + 8)));
    }
  }
  const int valid = std::min(16, cols - h * 16);
  for (int i = 0; i < MR; ++i) {
    float* yr = y + (i0 + i) * w.rows + c0 + h * 16;
    for (int j = 0; j < valid; ++j) {
      const int64_t col = c0 + h * 16 + j;
      yr[j] = tot[i][j] * w.scales[col] + (bias ? bias[col] : 0.f);
    }
  }
}

}  // namespace

size_t quant_gemm_w8a16_panel_bytes(const WeightMatrix& w) { return w8a16_panel_bytes(w.cols); }

TERN_TARGET_AVX512VNNI void quant_gemm_w8a16_avx512vnni(const QuantActs& a, const WeightMatrix& w, float* y,
                                                        const float* bias, int64_t n0, int64_t n1, void* panel) {
  auto* p = static_cast<uint8_t*>(panel);
  for (int64_t c0 = n0; c0 < n1; c0 += kQPanel) {
    const int cols = int(std::min<int64_t>(kQPanel, n1 - c0));
    w8a16_repack(w, c0, cols, p);
    int64_t i = 0;
    for (; i + kMR <= a.m; i += kMR) tile_avx512<kMR>(a, w, y, bias, i, c0, cols, p);
    switch (a.m - i) {
      case 3: tile_avx512<3>(a, w, y, bias, i, c0, cols, p); break;
      case 2: tile_avx512<2>(a, w, y, bias, i, c0, cols, p); break;
      case 1: tile_avx512<1>(a, w, y, bias, i, c0, cols, p); break;
      default: break;
    }
  }
}

TERN_TARGET_AVX2 void quant_gemm_w8a16_avx2(const QuantActs& a, const WeightMatrix& w, float* y, const float* bias,
                                            int64_t n0, int64_t n1, void* panel) {
  auto* p = static_cast<uint8_t*>(panel);
  for (int64_t c0 = n0; c0 < n1; c0 += kQPanel) {
    const int cols = int(std::min<int64_t>(kQPanel, n1 - c0));
    w8a16_repack(w, c0, cols, p);
    for (int h = 0; h * 16 < cols; ++h) {
      int64_t i = 0;
      for (; i + kMR <= a.m; i += kMR) tile_avx2<kMR>(a, w, y, bias, i, c0, h, cols, p);
      switch (a.m - i) {
        case 3: tile_avx2<3>(a, w, y, bias, i, c0, h, cols, p); break;
        case 2: tile_avx2<2>(a, w, y, bias, i, c0, h, cols, p); break;
        case 1: tile_avx2<1>(a, w, y, bias, i, c0, h, cols, p); break;
        default: break;
      }
    }
  }
}

}  // namespace tern::cpu
