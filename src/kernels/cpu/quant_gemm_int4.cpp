// Int4Group GEMM for m > kGemvMaxRows (prefill chunks, batched decode at > 8 in flight): the int4
// kernels' numerics (x as int8 per weight group, exact int32 group sums Σ q·xq; quant_int4_scalar is the
// reference) with register tiles over rows of x and weight columns. Before it, VNNI hosts ran one weight
// row at a time against 4 rows of x with a horizontal sum per (row, column), and AVX2 hosts widened
// every weight to f32 for the dense GEMM.
//   Panel (quant_gemm_panel.h): 32 weight rows as u8 code quads [k/4][32 columns][4] plus s and s·zero
//   per (group, column), per call, in per-thread scratch (32 · k bytes), reused by every row of x.
//   y[i, c] = Σ_g (s·xd) · Σ q·xq − (s·z) · (xd · Σ xq): one vcvtdq2ps and two FMAs per group.
//   AVX-512 VNNI tile: 4 rows of x × 32 columns, vpdpbusd (u8 codes × s8 x, 64 products).
//   AVX2 tile: 4 rows × 16 columns, vpmaddubsw + vpmaddwd + vpaddd (2 · 15 · 127 fits int16).
// Group sums never overflow: 15 · 127 · group (<= 2^24 for any group up to 8192).
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"

#include "kernels/cpu/quant_gemm_panel.h"

namespace tern::cpu {

namespace {

constexpr int kMR = 4;  // rows of x per tile

inline int32_t x_quad(const int8_t* x) {
  int32_t v;
  std::memcpy(&v, x, 4);
  return v;
}

template <int MR>
TERN_TARGET_AVX512VNNI void tile_avx512(const QuantActs& a, const WeightMatrix& w, float* y, const float* bias,
                                        int64_t i0, int64_t c0, int cols, const Int4Panel& p) {
  const int64_t k = w.cols, gs = w.group, ng = k / gs;
  __m512 c[MR][2];
  for (int i = 0; i < MR; ++i) c[i][0] = c[i][1] = _mm512_setzero_ps();
  const int8_t* xr[MR];
  for (int i = 0; i < MR; ++i) xr[i] = a.xq + (i0 + i) * k;
  for (int64_t g = 0; g < ng; ++g) {
    const uint8_t* cp = p.codes + size_t(g * gs / 4) * kUnitStride;
    __m512i acc[MR][2];
    for (int i = 0; i < MR; ++i) acc[i][0] = acc[i][1] = _mm512_setzero_si512();
#pragma GCC unroll 8
    for (int64_t t = 0; t < gs / 4; ++t) {
      const __m512i w0 = _mm512_loadu_si512(cp + t * kUnitStride), w1 = _mm512_loadu_si512(cp + t * kUnitStride + 64);
#pragma GCC unroll 4
      for (int i = 0; i < MR; ++i) {
        const __m512i xb = _mm512_set1_epi32(x_quad(xr[i] + g * gs + 4 * t));
        acc[i][0] = _mm512_dpbusd_epi32(acc[i][0], w0, xb);
        acc[i][1] = _mm512_dpbusd_epi32(acc[i][1], w1, xb);
      }
    }
    const __m512 s0 = _mm512_loadu_ps(p.s + g * kQPanel), s1 = _mm512_loadu_ps(p.s + g * kQPanel + 16);
    const __m512 z0 = _mm512_loadu_ps(p.sz + g * kQPanel), z1 = _mm512_loadu_ps(p.sz + g * kQPanel + 16);
#pragma GCC unroll 4
    for (int i = 0; i < MR; ++i) {
      const __m512 xd = _mm512_set1_ps(a.xd[(i0 + i) * ng + g]), xs = _mm512_set1_ps(a.xs[(i0 + i) * ng + g]);
      c[i][0] = _mm512_fnmadd_ps(z0, xs, _mm512_fmadd_ps(_mm512_cvtepi32_ps(acc[i][0]), _mm512_mul_ps(s0, xd), c[i][0]));
      c[i][1] = _mm512_fnmadd_ps(z1, xs, _mm512_fmadd_ps(_mm512_cvtepi32_ps(acc[i][1]), _mm512_mul_ps(s1, xd), c[i][1]));
    }
  }
  const __mmask16 k0 = cols >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << cols) - 1);
  const __mmask16 k1 = cols >= 32 ? __mmask16(0xFFFF) : cols <= 16 ? 0 : __mmask16((1u << (cols - 16)) - 1);
  const __m512 b0 = bias ? _mm512_maskz_loadu_ps(k0, bias + c0) : _mm512_setzero_ps();
  const __m512 b1 = bias ? _mm512_maskz_loadu_ps(k1, bias + c0 + 16) : _mm512_setzero_ps();
  for (int i = 0; i < MR; ++i) {
    float* yr = y + (i0 + i) * w.rows + c0;
    _mm512_mask_storeu_ps(yr, k0, _mm512_add_ps(c[i][0], b0));
    _mm512_mask_storeu_ps(yr + 16, k1, _mm512_add_ps(c[i][1], b1));
  }
}

// Half h (16 columns) of one panel; f32 totals in memory, touched once per group.
template <int MR>
TERN_TARGET_AVX2 void tile_avx2(const QuantActs& a, const WeightMatrix& w, float* y, const float* bias, int64_t i0,
                                int64_t c0, int h, int cols, const Int4Panel& p) {
  const int64_t k = w.cols, gs = w.group, ng = k / gs;
  const __m256i ones = _mm256_set1_epi16(1);
  alignas(32) float tot[MR][16] = {};
  const int8_t* xr[MR];
  for (int i = 0; i < MR; ++i) xr[i] = a.xq + (i0 + i) * k;
  for (int64_t g = 0; g < ng; ++g) {
    const uint8_t* cp = p.codes + size_t(g * gs / 4) * kUnitStride + h * 64;
    __m256i acc[MR][2];
    for (int i = 0; i < MR; ++i) acc[i][0] = acc[i][1] = _mm256_setzero_si256();
#pragma GCC unroll 4
    for (int64_t t = 0; t < gs / 4; ++t) {
      const __m256i w0 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(cp + t * kUnitStride));
      const __m256i w1 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(cp + t * kUnitStride + 32));
#pragma GCC unroll 4
      for (int i = 0; i < MR; ++i) {
        const __m256i xb = _mm256_set1_epi32(x_quad(xr[i] + g * gs + 4 * t));
        acc[i][0] = _mm256_add_epi32(acc[i][0], _mm256_madd_epi16(_mm256_maddubs_epi16(w0, xb), ones));
        acc[i][1] = _mm256_add_epi32(acc[i][1], _mm256_madd_epi16(_mm256_maddubs_epi16(w1, xb), ones));
      }
    }
    const float* sp = p.s + g * kQPanel + h * 16;
    const float* zp = p.sz + g * kQPanel + h * 16;
#pragma GCC unroll 4
    for (int i = 0; i < MR; ++i) {
      const __m256 xd = _mm256_set1_ps(a.xd[(i0 + i) * ng + g]), xs = _mm256_set1_ps(a.xs[(i0 + i) * ng + g]);
      for (int v = 0; v < 2; ++v) {
        const __m256 prod = _mm256_mul_ps(_mm256_loadu_ps(sp + 8 * v), xd);
        const __m256 t = _mm256_fmadd_ps(_mm256_cvtepi32_ps(acc[i][v]), prod, _mm256_load_ps(tot[i] + 8 * v));
        _mm256_store_ps(tot[i] + 8 * v, _mm256_fnmadd_ps(_mm256_loadu_ps(zp + 8 * v), xs, t));
      }
    }
  }
  const int valid = std::min(16, cols - h * 16);
  for (int i = 0; i < MR; ++i) {
    float* yr = y + (i0 + i) * w.rows + c0 + h * 16;
    for (int j = 0; j < valid; ++j) yr[j] = tot[i][j] + (bias ? bias[c0 + h * 16 + j] : 0.f);
  }
}

}  // namespace

size_t quant_gemm_int4_panel_bytes(const WeightMatrix& w) { return int4_panel_bytes(w.cols, w.group); }

TERN_TARGET_AVX512VNNI void quant_gemm_int4_avx512vnni(const QuantActs& a, const WeightMatrix& w, float* y,
                                                       const float* bias, int64_t n0, int64_t n1, void* panel) {
  const Int4Panel p = int4_panel_view(w, panel);
  for (int64_t c0 = n0; c0 < n1; c0 += kQPanel) {
    const int cols = int(std::min<int64_t>(kQPanel, n1 - c0));
    int4_repack(w, c0, cols, p);
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

TERN_TARGET_AVX2 void quant_gemm_int4_avx2(const QuantActs& a, const WeightMatrix& w, float* y, const float* bias,
                                           int64_t n0, int64_t n1, void* panel) {
  const Int4Panel p = int4_panel_view(w, panel);
  for (int64_t c0 = n0; c0 < n1; c0 += kQPanel) {
    const int cols = int(std::min<int64_t>(kQPanel, n1 - c0));
    int4_repack(w, c0, cols, p);
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
