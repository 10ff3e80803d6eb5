// Vector math shared by the CPU kernels of the non-matmul ops: exp, tanh and horizontal sums for
// AVX2 (+FMA) and AVX-512. Every function carries its own target attribute and is `static`, so
// including this header from a generic translation unit never leaks ISA-specific code into
// generic callers (see DESIGN.md: no whole-file -mavx512f).
//
// exp: Cody-Waite reduction x = n·ln2 + r, |r| <= ln2/2, then a degree-7 Taylor polynomial in
// Horner form (truncation error r^8/8! < 0.15 ulp); measured error is about 1 ulp, which is what
// torch's own vectorised exp (Sleef u10) promises. Inputs below ln(FLT_MIN) give exactly 0
// (so -inf → 0, the masked-softmax case), inputs above ~88.37 saturate at ~2.4e38, NaN stays NaN.
#pragma once

// GCC 12's AVX-512 intrinsic headers build results from deliberately undefined registers
// (_mm512_undefined_*), which -Wmaybe-uninitialized reports at their inlined call sites. The
// diagnostic state is taken at the header's own lines, so it has to be silenced before the include.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>

#define TERN_AVX2_TARGET __attribute__((target("avx2,fma,f16c")))
#define TERN_AVX512_TARGET __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx2,fma,f16c")))

namespace tern::cpu {

namespace vec_const {
constexpr float kExpLo = -87.33654f;  // ln(FLT_MIN): below this the result is flushed to 0
constexpr float kExpHi = 88.37f;      // keeps n <= 127 so 2^n stays a normal float
constexpr float kLog2e = 1.44269504088896341f;
constexpr float kLn2Hi = 0.693359375f;  // 9 significant bits: n·kLn2Hi is exact for |n| <= 128
constexpr float kLn2Lo = -2.12194440e-4f;
// 1/k! for k = 7 .. 2 (Horner order).
constexpr float kC7 = 1.f / 5040.f, kC6 = 1.f / 720.f, kC5 = 1.f / 120.f, kC4 = 1.f / 24.f, kC3 = 1.f / 6.f,
                kC2 = 0.5f;
// tanh(x) = x - x³/3 + 2x⁵/15 - 17x⁷/315 + 62x⁹/2835 for |x| < kTanhSeries (next term < 1e-8 relative).
constexpr float kTanhSeries = 0.25f;
constexpr float kT3 = -1.f / 3.f, kT5 = 2.f / 15.f, kT7 = -17.f / 315.f, kT9 = 62.f / 2835.f;
}  // namespace vec_const

// ---------------------------------------------------------------- AVX2 + FMA

TERN_AVX2_TARGET static inline __m256 exp_avx2(__m256 x) {
  using namespace vec_const;
  const __m256 xc = _mm256_min_ps(_mm256_set1_ps(kExpHi), _mm256_max_ps(_mm256_set1_ps(kExpLo), x));
  const __m256 n = _mm256_round_ps(_mm256_mul_ps(xc, _mm256_set1_ps(kLog2e)), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(kLn2Hi), xc);
  r = _mm256_fnmadd_ps(n, _mm256_set1_ps(kLn2Lo), r);
  __m256 p = _mm256_set1_ps(kC7);
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(kC6));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(kC5));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(kC4));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(kC3));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(kC2));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.f));
  const __m256i e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
  const __m256 y = _mm256_mul_ps(p, _mm256_castsi256_ps(e));
  // x < kExpLo (including -inf) → 0; NaN compares false and keeps its NaN.
  return _mm256_andnot_ps(_mm256_cmp_ps(x, _mm256_set1_ps(kExpLo), _CMP_LT_OQ), y);
}

TERN_AVX2_TARGET static inline __m256 tanh_avx2(__m256 x) {
  using namespace vec_const;
  const __m256 sign = _mm256_set1_ps(-0.f);
  const __m256 ax = _mm256_andnot_ps(sign, x);
  // Large |x|: tanh = (1 - e) / (1 + e), e = exp(-2|x|), sign restored afterwards.
  const __m256 e = exp_avx2(_mm256_mul_ps(ax, _mm256_set1_ps(-2.f)));
  const __m256 one = _mm256_set1_ps(1.f);
  __m256 big = _mm256_div_ps(_mm256_sub_ps(one, e), _mm256_add_ps(one, e));
  big = _mm256_or_ps(big, _mm256_and_ps(sign, x));
  // Small |x|: odd series, avoids the cancellation in 1 - e.
  const __m256 x2 = _mm256_mul_ps(x, x);
  __m256 q = _mm256_set1_ps(kT9);
  q = _mm256_fmadd_ps(q, x2, _mm256_set1_ps(kT7));
  q = _mm256_fmadd_ps(q, x2, _mm256_set1_ps(kT5));
  q = _mm256_fmadd_ps(q, x2, _mm256_set1_ps(kT3));
  const __m256 small = _mm256_fmadd_ps(_mm256_mul_ps(q, x2), x, x);
  return _mm256_blendv_ps(big, small, _mm256_cmp_ps(ax, _mm256_set1_ps(kTanhSeries), _CMP_LT_OQ));
}

TERN_AVX2_TARGET static inline float hsum_avx2(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

TERN_AVX2_TARGET static inline float hmax_avx2(__m256 v) {
  __m128 s = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_max_ps(s, _mm_movehl_ps(s, s));
  s = _mm_max_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

// Lane i of the result is the sum of the 8 lanes of a_i.
TERN_AVX2_TARGET static inline __m256 hsum8_avx2(__m256 a0, __m256 a1, __m256 a2, __m256 a3, __m256 a4, __m256 a5,
                                                 __m256 a6, __m256 a7) {
  const __m256 t0 = _mm256_hadd_ps(a0, a1), t1 = _mm256_hadd_ps(a2, a3);
  const __m256 t2 = _mm256_hadd_ps(a4, a5), t3 = _mm256_hadd_ps(a6, a7);
  const __m256 u0 = _mm256_hadd_ps(t0, t1);  // [a0..a3 low halves | a0..a3 high halves]
  const __m256 u1 = _mm256_hadd_ps(t2, t3);  // [a4..a7 low halves | a4..a7 high halves]
  return _mm256_add_ps(_mm256_permute2f128_ps(u0, u1, 0x20), _mm256_permute2f128_ps(u0, u1, 0x31));
}

// ---------------------------------------------------------------- AVX-512

TERN_AVX512_TARGET static inline __m512 exp_avx512(__m512 x) {
  using namespace vec_const;
  const __m512 xc = _mm512_min_ps(_mm512_set1_ps(kExpHi), _mm512_max_ps(_mm512_set1_ps(kExpLo), x));
  const __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(xc, _mm512_set1_ps(kLog2e)), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(kLn2Hi), xc);
  r = _mm512_fnmadd_ps(n, _mm512_set1_ps(kLn2Lo), r);
  __m512 p = _mm512_set1_ps(kC7);
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(kC6));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(kC5));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(kC4));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(kC3));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(kC2));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.f));
  const __m512 y = _mm512_scalef_ps(p, n);
  const __mmask16 under = _mm512_cmp_ps_mask(x, _mm512_set1_ps(kExpLo), _CMP_LT_OQ);
  return _mm512_mask_mov_ps(y, under, _mm512_setzero_ps());
}

TERN_AVX512_TARGET static inline __m512 tanh_avx512(__m512 x) {
  using namespace vec_const;
  const __m512 ax = _mm512_abs_ps(x);
  const __m512 e = exp_avx512(_mm512_mul_ps(ax, _mm512_set1_ps(-2.f)));
  const __m512 one = _mm512_set1_ps(1.f);
  __m512 big = _mm512_div_ps(_mm512_sub_ps(one, e), _mm512_add_ps(one, e));
  big = _mm512_or_ps(big, _mm512_and_ps(_mm512_set1_ps(-0.f), x));
  const __m512 x2 = _mm512_mul_ps(x, x);
  __m512 q = _mm512_set1_ps(kT9);
  q = _mm512_fmadd_ps(q, x2, _mm512_set1_ps(kT7));
  q = _mm512_fmadd_ps(q, x2, _mm512_set1_ps(kT5));
  q = _mm512_fmadd_ps(q, x2, _mm512_set1_ps(kT3));
  const __m512 small = _mm512_fmadd_ps(_mm512_mul_ps(q, x2), x, x);
  const __mmask16 is_small = _mm512_cmp_ps_mask(ax, _mm512_set1_ps(kTanhSeries), _CMP_LT_OQ);
  return _mm512_mask_mov_ps(big, is_small, small);
}

}  // namespace tern::cpu
