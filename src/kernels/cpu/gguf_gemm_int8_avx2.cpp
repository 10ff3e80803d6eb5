// AVX2 integer GEMM for m > kGemvMaxRows against GGUF Q8_0 / Q4_0 / Q4_K / Q6_K, for CPUs without
// VNNI: the same x quantization and weight panels as gguf_gemm_int8_avx512.cpp (gguf_gemm_int8_panel.h),
// with vpmaddubsw (u8 × s8 pairs -> s16) + vpmaddwd (pairs -> s32) in place of vpdpbusd: 3 instructions
// per 32 products instead of 1 per 64, still ~3× fewer than the f32 panel GEMM's FMAs plus decode.
// Saturation: vpmaddubsw adds two u·x products in int16. Codes up to 63 (Q4_0, Q4_K, Q6_K) give at most
// 2 · 63 · 127 = 16002; Q8_0's unsigned codes (q + 128, up to 255) could reach 64770, so Q8_0 panels
// keep q signed and the tile multiplies |q| by x with q's sign moved onto x (vpsignb), as ggml's AVX2
// q8_0 dot does: 2 · 127 · 127 = 32258 fits.
// Tile: 2 rows of x × 16 columns (2 ymm of 8 column sums), C in registers over all of k.
#include <immintrin.h>

#include <algorithm>
#include <cstring>

#include "kernels/cpu/gguf_gemm_int8_panel.h"
#include "kernels/cpu/gguf_gemm_int8_repack8.h"
#include "kernels/cpu/gguf_kernels.h"
#include "kernels/cpu/quant_avx2_util.h"

namespace tern::cpu {

namespace {

constexpr int kMR2 = 2;

// y[i0 .. i0+MR, c0 + h·16 .. +16) for half h of one panel.
template <int MR, int G, bool kSigned>
TERN_TARGET_AVX2 void tile(const GgufGemmActs& x, const MatmulArgs& a, int64_t i0, int64_t c0, int h, int cols,
                           const PanelView& p) {
  const int64_t k = a.w.cols, nsub = k / G;
  const float* xs = G == 16 ? x.xs16 : x.xs32;
  const __m256i ones = _mm256_set1_epi16(1);
  __m256 c[MR][2];
  for (int i = 0; i < MR; ++i) c[i][0] = c[i][1] = _mm256_setzero_ps();
  for (int64_t sb = 0; sb < nsub; ++sb) {
    const uint8_t* cp = p.codes + size_t(sb) * G * kPanel + h * 64;
    __m256i acc[MR][2];
    for (int i = 0; i < MR; ++i) acc[i][0] = acc[i][1] = _mm256_setzero_si256();
#pragma GCC unroll 8
    for (int q = 0; q < G / 4; ++q) {
      const __m256i w0 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(cp + q * 128));
      const __m256i w1 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(cp + q * 128 + 32));
      const __m256i u0 = kSigned ? _mm256_sign_epi8(w0, w0) : w0, u1 = kSigned ? _mm256_sign_epi8(w1, w1) : w1;
#pragma GCC unroll 2
      for (int i = 0; i < MR; ++i) {
        int32_t xv;
        std::memcpy(&xv, x.q + (i0 + i) * k + sb * G + q * 4, 4);
        const __m256i xb = _mm256_set1_epi32(xv);
        const __m256i x0 = kSigned ? _mm256_sign_epi8(xb, w0) : xb, x1 = kSigned ? _mm256_sign_epi8(xb, w1) : xb;
        acc[i][0] = _mm256_add_epi32(acc[i][0], _mm256_madd_epi16(_mm256_maddubs_epi16(u0, x0), ones));
        acc[i][1] = _mm256_add_epi32(acc[i][1], _mm256_madd_epi16(_mm256_maddubs_epi16(u1, x1), ones));
      }
    }
    const float* sp = p.s + sb * kPanel + h * 16;
    const float* mp = p.mn + sb * kPanel + h * 16;
    const __m256 s0 = _mm256_loadu_ps(sp), s1 = _mm256_loadu_ps(sp + 8);
    const __m256 m0 = _mm256_loadu_ps(mp), m1 = _mm256_loadu_ps(mp + 8);
#pragma GCC unroll 2
    for (int i = 0; i < MR; ++i) {
      const __m256 xd = _mm256_set1_ps(x.d[(i0 + i) * (k / 32) + sb * G / 32]);
      const __m256 xm = _mm256_set1_ps(xs[(i0 + i) * nsub + sb]);
      c[i][0] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(acc[i][0]), _mm256_mul_ps(s0, xd), c[i][0]);
      c[i][1] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(acc[i][1]), _mm256_mul_ps(s1, xd), c[i][1]);
      c[i][0] = _mm256_fnmadd_ps(m0, xm, c[i][0]);
      c[i][1] = _mm256_fnmadd_ps(m1, xm, c[i][1]);
    }
  }
  const int64_t n = a.w.rows;
  const int valid = std::min(16, cols - h * 16);  // columns of this half that exist (1..16)
  for (int i = 0; i < MR; ++i) {
    alignas(32) float out[16];
    _mm256_store_ps(out, c[i][0]);
    _mm256_store_ps(out + 8, c[i][1]);
    float* y = a.y + (i0 + i) * n + c0 + h * 16;
    for (int j = 0; j < valid; ++j) y[j] = out[j] + (a.bias ? a.bias[c0 + h * 16 + j] : 0.f);
  }
}

template <int G, bool kSigned>
TERN_TARGET_AVX2 void tiles(const GgufGemmActs& x, const MatmulArgs& a, int64_t c0, int cols, const PanelView& p) {
  for (int h = 0; h * 16 < cols; ++h) {
    int64_t i = 0;
    for (; i + kMR2 <= a.m; i += kMR2) tile<kMR2, G, kSigned>(x, a, i, c0, h, cols, p);
    if (i < a.m) tile<1, G, kSigned>(x, a, i, c0, h, cols, p);
  }
}

}  // namespace

TERN_TARGET_AVX2 GgufGemmActs gguf_gemm_int8_prepare_avx2(const float* x, int64_t m, int64_t k, void* scratch) {
  const ActsView v = acts_view(scratch, m, k);
  int8_t* q = v.q;
  float *d = v.d, *xs32 = v.xs32, *xs16 = v.xs16;
  GgufGemmActs a;
  const __m256 abs_mask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff));
  const __m256 lo = _mm256_set1_ps(-127.f), hi = _mm256_set1_ps(127.f);
  for (int64_t r = 0; r < m * (k / 32); ++r) {  // r: one 32-value group of one row (k % 32 == 0)
    const float* v = x + r * 32;
    __m256 vmax = _mm256_setzero_ps();
    for (int j = 0; j < 32; j += 8) vmax = _mm256_max_ps(vmax, _mm256_and_ps(_mm256_loadu_ps(v + j), abs_mask));
    __m128 mx = _mm_max_ps(_mm256_castps256_ps128(vmax), _mm256_extractf128_ps(vmax, 1));
    mx = _mm_max_ps(mx, _mm_movehl_ps(mx, mx));
    mx = _mm_max_ss(mx, _mm_movehdup_ps(mx));
    const float dd = _mm_cvtss_f32(mx) / 127.f, inv = dd > 0 ? 1.f / dd : 0.f;
    const __m256 vi = _mm256_set1_ps(inv);
    __m256i cv[4];
    for (int j = 0; j < 4; ++j)  // round to nearest even (default MXCSR), as std::nearbyint
      cv[j] = _mm256_cvtps_epi32(_mm256_min_ps(_mm256_max_ps(_mm256_mul_ps(_mm256_loadu_ps(v + 8 * j), vi), lo), hi));
    const __m256i pk = _mm256_packs_epi16(_mm256_packs_epi32(cv[0], cv[1]), _mm256_packs_epi32(cv[2], cv[3]));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(q + r * 32),
                        _mm256_permutevar8x32_epi32(pk, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7)));
    const int s0 = avx2_hsum_i32(_mm256_add_epi32(cv[0], cv[1])), s1 = avx2_hsum_i32(_mm256_add_epi32(cv[2], cv[3]));
    d[r] = dd;
    xs16[2 * r] = dd * float(s0), xs16[2 * r + 1] = dd * float(s1);
    xs32[r] = dd * float(s0 + s1);
  }
  a.q = q, a.d = d, a.xs32 = xs32, a.xs16 = xs16;
  return a;
}

void gguf_gemm_int8_avx2(const GgufGemmActs& x, const MatmulArgs& a, void* panel, int64_t n0, int64_t n1) {
  const GgufType t = GgufType(a.w.gguf_type);
  const PanelView p = panel_view(a.w, panel);
  const bool q8 = t == GgufType::Q8_0, g16 = sub_elems(t) == 16;
  for (int64_t c0 = n0; c0 < n1; c0 += kPanel) {
    const int cols = int(std::min<int64_t>(kPanel, n1 - c0));
    repack_panel8(a, c0, cols, p.codes, p.s, p.mn, /*signed_q8=*/q8);
    if (q8) {
      tiles<32, true>(x, a, c0, cols, p);
    } else {
      g16 ? tiles<16, false>(x, a, c0, cols, p) : tiles<32, false>(x, a, c0, cols, p);
    }
  }
}

}  // namespace tern::cpu
