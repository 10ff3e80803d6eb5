// AVX-512 VNNI GEMM for m > kGemvMaxRows (prefill chunks, large batches) against GGUF Q8_0 / Q4_0 /
// Q4_K / Q5_K / Q6_K: integer dot products instead of decoding the weights to f32 (the f32 panel GEMM spent
// 84% of a Q8_0 prefill in its FMA tile). Why the layout:
//   x is quantized once per call to int8 per 32 values (scale max|x| / 127, as the m <= 8 path).
//   Each weight value becomes an unsigned code u (0..255) with w = s·u − mn per sub-block of G values
//   (G = 32; 16 for Q6_K, whose scales are per 16): Q8_0 u = q + 128, mn = 128·d; Q4_0 u = nibble,
//   mn = 8·d; Q4_K / Q5_K s = d·sc, mn = dmin·m (Q5_K's u: 5 bits, 0..31); Q6_K u = 6-bit code, s = d·sc, mn = 32·d·sc. Then
//   Σ w·x = xd · (s · Σ u·xq − mn · Σ xq) per sub-block, and Σ u·xq is vpdpbusd's exact u8 × s8 sum.
//   A panel of 32 weight rows (two zmm of 16 output columns) is repacked per call into thread scratch
//   as [sub-block][G/4 groups][32 columns][4 codes]: one zmm load gives 16 columns × 4 values, and
//   one vpdpbusd against x's 4 codes broadcast adds 64 products into 16 column sums, so the tile
//   needs no horizontal reductions. Each weight block is decoded once per call (full k per panel;
//   ~80 KB for k = 2048, L2-resident) and reused by every row of x.
//   Tile: 4 rows of x × 32 columns, C kept in registers over all of k; per sub-block the int32 sums
//   go to f32 with one vcvtdq2ps and two FMAs (scale, then the min term).
// Results differ from the f32 path only by x's int8 rounding (bounded in the unit test).
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"

#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <cstring>

#include "core/dtype.h"
#include "kernels/cpu/gguf_gemm_int8_panel.h"
#include "kernels/cpu/gguf_gemm_int8_repack8.h"
#include "kernels/cpu/gguf_kernels.h"

#define TERN_GEMM8_AVX512 \
  __attribute__((target("avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512dq,avx512vnni")))

namespace tern::cpu {

namespace {

constexpr int kMR = 4;  // rows of x per tile

// y[i0 .. i0+MR, c0 .. c0+cols) for one panel. x: codes [m][k], xd [m][k/32], xs [m][k/G] = xd · Σ codes.
template <int MR, int G>
TERN_GEMM8_AVX512 void tile(const GgufGemmActs& x, const MatmulArgs& a, int64_t i0, int64_t c0, int cols,
                            const uint8_t* codes, const float* s, const float* mn) {
  const int64_t k = a.w.cols, nsub = k / G;
  const float* xs = G == 16 ? x.xs16 : x.xs32;
  __m512 c[MR][2];
  for (int i = 0; i < MR; ++i) c[i][0] = c[i][1] = _mm512_setzero_ps();
  for (int64_t sb = 0; sb < nsub; ++sb) {
    const uint8_t* p = codes + size_t(sb) * G * kPanel;
    __m512i acc[MR][2];
    for (int i = 0; i < MR; ++i) acc[i][0] = acc[i][1] = _mm512_setzero_si512();
#pragma GCC unroll 8
    for (int q = 0; q < G / 4; ++q) {
      const __m512i w0 = _mm512_loadu_si512(p + q * 128), w1 = _mm512_loadu_si512(p + q * 128 + 64);
#pragma GCC unroll 4
      for (int i = 0; i < MR; ++i) {
        int32_t xv;
        std::memcpy(&xv, x.q + (i0 + i) * k + sb * G + q * 4, 4);
        const __m512i xb = _mm512_set1_epi32(xv);
        acc[i][0] = _mm512_dpbusd_epi32(acc[i][0], w0, xb);
        acc[i][1] = _mm512_dpbusd_epi32(acc[i][1], w1, xb);
      }
    }
    const __m512 s0 = _mm512_loadu_ps(s + sb * kPanel), s1 = _mm512_loadu_ps(s + sb * kPanel + 16);
    const __m512 m0 = _mm512_loadu_ps(mn + sb * kPanel), m1 = _mm512_loadu_ps(mn + sb * kPanel + 16);
#pragma GCC unroll 4
    for (int i = 0; i < MR; ++i) {
      const __m512 xd = _mm512_set1_ps(x.d[(i0 + i) * (k / 32) + sb * G / 32]);
      const __m512 xm = _mm512_set1_ps(xs[(i0 + i) * nsub + sb]);
      c[i][0] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(acc[i][0]), _mm512_mul_ps(s0, xd), c[i][0]);
      c[i][1] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(acc[i][1]), _mm512_mul_ps(s1, xd), c[i][1]);
      c[i][0] = _mm512_fnmadd_ps(m0, xm, c[i][0]);
      c[i][1] = _mm512_fnmadd_ps(m1, xm, c[i][1]);
    }
  }
  const __mmask16 k0 = cols >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << cols) - 1);
  const __mmask16 k1 = cols >= 32 ? __mmask16(0xFFFF) : cols <= 16 ? 0 : __mmask16((1u << (cols - 16)) - 1);
  const int64_t n = a.w.rows;
  for (int i = 0; i < MR; ++i) {
    float* y = a.y + (i0 + i) * n + c0;
    __m512 r0 = c[i][0], r1 = c[i][1];
    if (a.bias) {
      r0 = _mm512_add_ps(r0, _mm512_maskz_loadu_ps(k0, a.bias + c0));
      r1 = _mm512_add_ps(r1, _mm512_maskz_loadu_ps(k1, a.bias + c0 + 16));
    }
    _mm512_mask_storeu_ps(y, k0, r0);
    _mm512_mask_storeu_ps(y + 16, k1, r1);
  }
}

template <int G>
TERN_GEMM8_AVX512 void tiles(const GgufGemmActs& x, const MatmulArgs& a, int64_t c0, int cols, const uint8_t* codes,
                             const float* s, const float* mn) {
  int64_t i = 0;
  for (; i + kMR <= a.m; i += kMR) tile<kMR, G>(x, a, i, c0, cols, codes, s, mn);
  switch (a.m - i) {
    case 3: return tile<3, G>(x, a, i, c0, cols, codes, s, mn);
    case 2: return tile<2, G>(x, a, i, c0, cols, codes, s, mn);
    case 1: return tile<1, G>(x, a, i, c0, cols, codes, s, mn);
    default: return;
  }
}

}  // namespace

bool gguf_gemm_int8_supported(GgufType t) {
  return t == GgufType::Q8_0 || t == GgufType::Q4_0 || t == GgufType::Q4_K || t == GgufType::Q5_K ||
         t == GgufType::Q6_K;
}

size_t gguf_gemm_int8_acts_bytes(int64_t m, int64_t k) {
  return align64(size_t(m * k)) + align64(size_t(m * (k / 32)) * 4) + align64(size_t(m * (k / 32)) * 4) +
         align64(size_t(m * (k / 16)) * 4);
}

TERN_GEMM8_AVX512 GgufGemmActs gguf_gemm_int8_prepare_avx512(const float* x, int64_t m, int64_t k, void* scratch) {
  const ActsView v = acts_view(scratch, m, k);
  int8_t* q = v.q;
  float *d = v.d, *xs32 = v.xs32, *xs16 = v.xs16;
  GgufGemmActs a;
  const __m512 lo = _mm512_set1_ps(-127.f), hi = _mm512_set1_ps(127.f);
  for (int64_t r = 0; r < m * (k / 32); ++r) {  // r: one 32-value group of one row (k % 32 == 0)
    const __m512 v0 = _mm512_loadu_ps(x + r * 32), v1 = _mm512_loadu_ps(x + r * 32 + 16);
    const float amax = _mm512_reduce_max_ps(_mm512_max_ps(_mm512_abs_ps(v0), _mm512_abs_ps(v1)));
    const float dd = amax / 127.f, inv = dd > 0 ? 1.f / dd : 0.f;
    const __m512 vi = _mm512_set1_ps(inv);
    // Round to nearest even (the default MXCSR mode), as std::nearbyint.
    const __m512i c0 = _mm512_cvtps_epi32(_mm512_min_ps(_mm512_max_ps(_mm512_mul_ps(v0, vi), lo), hi));
    const __m512i c1 = _mm512_cvtps_epi32(_mm512_min_ps(_mm512_max_ps(_mm512_mul_ps(v1, vi), lo), hi));
    _mm_storeu_si128(reinterpret_cast<__m128i*>(q + r * 32), _mm512_cvtsepi32_epi8(c0));
    _mm_storeu_si128(reinterpret_cast<__m128i*>(q + r * 32 + 16), _mm512_cvtsepi32_epi8(c1));
    const int s0 = _mm512_reduce_add_epi32(c0), s1 = _mm512_reduce_add_epi32(c1);
    d[r] = dd;
    xs16[2 * r] = dd * float(s0), xs16[2 * r + 1] = dd * float(s1);
    xs32[r] = dd * float(s0 + s1);
  }
  a.q = q, a.d = d, a.xs32 = xs32, a.xs16 = xs16;
  return a;
}

size_t gguf_gemm_int8_panel_bytes(const WeightMatrix& w) {
  const GgufType t = GgufType(w.gguf_type);
  const int64_t nsub = w.cols / sub_elems(t);
  return align64(size_t(nsub) * size_t(sub_elems(t)) * kPanel) + 2 * align64(size_t(nsub) * kPanel * sizeof(float));
}

void gguf_gemm_int8_avx512vnni(const GgufGemmActs& x, const MatmulArgs& a, void* panel, int64_t n0, int64_t n1) {
  const PanelView p = panel_view(a.w, panel);
  const bool g16 = sub_elems(GgufType(a.w.gguf_type)) == 16;
  for (int64_t c0 = n0; c0 < n1; c0 += kPanel) {
    const int cols = int(std::min<int64_t>(kPanel, n1 - c0));
    repack_panel8(a, c0, cols, p.codes, p.s, p.mn, /*signed_q8=*/false);
    g16 ? tiles<16>(x, a, c0, cols, p.codes, p.s, p.mn) : tiles<32>(x, a, c0, cols, p.codes, p.s, p.mn);
  }
}

}  // namespace tern::cpu
