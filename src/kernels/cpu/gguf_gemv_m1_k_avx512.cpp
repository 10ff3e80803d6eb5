// AVX-512 (BW + VNNI) GEMV for one row of x (decode, m = 1) against Q4_K / Q6_K: the same arithmetic
// as gguf_gemv_m1_k_avx2.cpp (same activations, same integer sums, same float epilogue, so the two
// agree bit for bit), with half the instructions per weight byte. Why it pays: on the AVX2 kernel a
// 4-bit super-block costs ~65 vector instructions per row and decode ran at ~28 GB/s, arithmetic-
// bound; here one zmm holds four 32-value sub-blocks and each (codes · x) · scale step is
// vpmaddubsw + vpdpwssd (VNNI accumulates the scaled int16 pairs straight into int32) instead of
// vpmaddubsw + vpmaddwd + vpaddd on half the width.
//   Q4_K: zmm p of a super-block = bytes [64p, 64p + 64) of qs: low nibbles are sub-blocks 4p and
//         4p + 2 (x bytes [128p, +32) and [128p + 64, +32)), high nibbles 4p + 1 and 4p + 3.
//   Q6_K: zmm of half h = ql[64h, +64): low nibbles are values [128h, +64), high nibbles
//         [128h + 64, +64); qh[32h, +32) gives bits 4-5 of each, two bits per 32 values.
// GCC 12's AVX-512 intrinsics start from an "undefined" vector that -Wmaybe-uninitialized reports
// once inlined (see matmul_avx512_util.h); the code is fine.
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"

#include <immintrin.h>

#include <cstring>

#include "kernels/cpu/gguf_kernels.h"
#include "kernels/cpu/gguf_m1_avx2_util.h"

#define TERN_M1K_AVX512 \
  __attribute__((target("avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512dq,avx512vnni")))

namespace tern::cpu {

namespace {

// Per 256-value super-block of x, the four zmm the Q4_K nibble planes meet: [x_{4p}, x_{4p+2}] for
// the low nibbles and [x_{4p+1}, x_{4p+3}] for the high ones (p = 0, 1). Shared by the 4 rows.
struct Q4kActs {
  __m512i lo[2], hi[2];
};

TERN_M1K_AVX512 inline __m512i load_2x32(const int8_t* lo, const int8_t* hi) {
  return _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(lo))),
                            _mm256_loadu_si256(reinterpret_cast<const __m256i*>(hi)), 1);
}

TERN_M1K_AVX512 inline Q4kActs q4k_acts(const int8_t* xq) {
  Q4kActs a;
  for (int p = 0; p < 2; ++p) {
    const int8_t* x = xq + p * 128;
    a.lo[p] = load_2x32(x, x + 64);
    a.hi[p] = load_2x32(x + 32, x + 96);
  }
  return a;
}

// sc: the 8 int16 scales in every 128-bit lane. Returns scale s0 in every word of lanes 0-1 and s1
// in lanes 2-3 (a Q4_K zmm's two sub-blocks of 16 pair sums each).
TERN_M1K_AVX512 inline __m512i pick_scales(__m512i sc, int s0, int s1) {
  const char a0 = char(2 * s0), a1 = char(2 * s0 + 1), b0 = char(2 * s1), b1 = char(2 * s1 + 1);
  return _mm512_shuffle_epi8(sc, _mm512_set_epi8(b1, b0, b1, b0, b1, b0, b1, b0, b1, b0, b1, b0, b1, b0, b1, b0,
                                                 b1, b0, b1, b0, b1, b0, b1, b0, b1, b0, b1, b0, b1, b0, b1, b0,
                                                 a1, a0, a1, a0, a1, a0, a1, a0, a1, a0, a1, a0, a1, a0, a1, a0,
                                                 a1, a0, a1, a0, a1, a0, a1, a0, a1, a0, a1, a0, a1, a0, a1, a0));
}

// [16] int32 whose total is the row's integer dot over one super-block (scales applied, d·dx not);
// the min term Σ_j m_j X_j comes back as [4] partial sums in *mins, as q4k_block in the AVX2 file.
TERN_M1K_AVX512 inline __m512i q4k_block(const uint8_t* b, const Q4kActs& x, const int16_t* bs32, __m128i* mins) {
  uint32_t u[3];
  std::memcpy(u, b + 4, 12);
  const uint32_t sc_lo = u[0] & 0x3f3f3f3f, mn_lo = u[1] & 0x3f3f3f3f;
  const uint32_t sc_hi = (u[2] & 0x0f0f0f0f) | (((u[0] >> 6) & 0x03030303) << 4);
  const uint32_t mn_hi = ((u[2] >> 4) & 0x0f0f0f0f) | (((u[1] >> 6) & 0x03030303) << 4);
  const __m256i sm = _mm256_cvtepu8_epi16(_mm_setr_epi32(int(sc_lo), int(sc_hi), int(mn_lo), int(mn_hi)));
  *mins = _mm_madd_epi16(_mm256_extracti128_si256(sm, 1), _mm_loadu_si128(reinterpret_cast<const __m128i*>(bs32)));
  const __m512i sc = _mm512_broadcast_i32x4(_mm256_castsi256_si128(sm));
  const __m512i m4 = _mm512_set1_epi8(0x0F);
  __m512i acc = _mm512_setzero_si512();
#pragma GCC unroll 2
  for (int p = 0; p < 2; ++p) {
    const __m512i q = _mm512_loadu_si512(b + 16 + p * 64);
    const __m512i lo = _mm512_maddubs_epi16(_mm512_and_si512(q, m4), x.lo[p]);
    const __m512i hi = _mm512_maddubs_epi16(_mm512_and_si512(_mm512_srli_epi16(q, 4), m4), x.hi[p]);
    acc = _mm512_dpwssd_epi32(acc, lo, pick_scales(sc, 4 * p, 4 * p + 2));
    acc = _mm512_dpwssd_epi32(acc, hi, pick_scales(sc, 4 * p + 1, 4 * p + 3));
  }
  return acc;
}

// Q6_K: codes 0..63 (the −32 comes back through the per-16 sums of x, as in the AVX2 file); one
// 16-value sub-block per 128-bit lane of the pair sums, so vpermw spreads scale s over lane s % 4.
TERN_M1K_AVX512 inline __m512i q6k_block(const uint8_t* b, const int8_t* xq, const int16_t* bs16) {
  const __m256i sc16 = _mm256_cvtepi8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(b + 192)));
  const __m512i sc = _mm512_zextsi256_si512(sc16);
  const __m512i corr =
      _mm512_zextsi256_si512(_mm256_slli_epi32(_mm256_madd_epi16(sc16, _mm256_loadu_si256(
                                                                           reinterpret_cast<const __m256i*>(bs16))),
                                               5));
  const __m512i m4 = _mm512_set1_epi8(0x0F), m2 = _mm512_set1_epi8(3);
  const __m512i lane = _mm512_srli_epi16(
      _mm512_set_epi16(31, 30, 29, 28, 27, 26, 25, 24, 23, 22, 21, 20, 19, 18, 17, 16, 15, 14, 13, 12, 11, 10, 9, 8, 7,
                       6, 5, 4, 3, 2, 1, 0),
      3);  // word w -> w / 8: its 128-bit lane
  // Shift of qh per 256-bit half: values [0, 32) of a plane take bits 0-1 (or 4-5), [32, 64) 2-3 (6-7).
  const __m512i sh_lo = _mm512_inserti64x4(_mm512_set1_epi16(0), _mm256_set1_epi16(2), 1);
  const __m512i sh_hi = _mm512_add_epi16(sh_lo, _mm512_set1_epi16(4));
  __m512i acc = _mm512_setzero_si512();
#pragma GCC unroll 2
  for (int h = 0; h < 2; ++h) {
    const __m512i ql = _mm512_loadu_si512(b + h * 64);
    const __m512i qh = _mm512_broadcast_i64x4(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(b + 128 + h * 32)));
    const __m512i c_lo = _mm512_or_si512(_mm512_and_si512(ql, m4),
                                         _mm512_slli_epi16(_mm512_and_si512(_mm512_srlv_epi16(qh, sh_lo), m2), 4));
    const __m512i c_hi = _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi16(ql, 4), m4),
                                         _mm512_slli_epi16(_mm512_and_si512(_mm512_srlv_epi16(qh, sh_hi), m2), 4));
    const __m512i x_lo = _mm512_loadu_si512(xq + h * 128), x_hi = _mm512_loadu_si512(xq + h * 128 + 64);
    const __m512i s_lo = _mm512_permutexvar_epi16(_mm512_add_epi16(lane, _mm512_set1_epi16(int16_t(8 * h))), sc);
    const __m512i s_hi = _mm512_permutexvar_epi16(_mm512_add_epi16(lane, _mm512_set1_epi16(int16_t(8 * h + 4))), sc);
    acc = _mm512_dpwssd_epi32(acc, _mm512_maddubs_epi16(c_lo, x_lo), s_lo);
    acc = _mm512_dpwssd_epi32(acc, _mm512_maddubs_epi16(c_hi, x_hi), s_hi);
  }
  return _mm512_sub_epi32(acc, corr);
}

// [16] int32 -> [8] int32 with the same total, for the AVX2 transpose-add.
TERN_M1K_AVX512 inline __m256i fold256(__m512i v) {
  return _mm256_add_epi32(_mm512_castsi512_si256(v), _mm512_extracti64x4_epi64(v, 1));
}

template <GgufType T>
TERN_M1K_AVX512 void rows4(const GgufActs& x, const MatmulArgs& a, int64_t r0, int64_t stride) {
  constexpr int64_t kBB = T == GgufType::Q4_K ? 144 : 210;
  constexpr int64_t kDOff = T == GgufType::Q4_K ? 0 : 208;
  const int64_t nb = a.w.cols / 256;
  const size_t rb = size_t(nb * kBB);
  const uint8_t* p[4];
  for (int r = 0; r < 4; ++r) p[r] = static_cast<const uint8_t*>(a.w.data) + size_t(r0 + r * stride) * rb;
  __m128 acc = _mm_setzero_ps();
  for (int64_t b = 0; b < nb; ++b) {
    const int64_t off = b * kBB;
#pragma GCC unroll 4
    for (int r = 0; r < 4; ++r) {
      _mm_prefetch(reinterpret_cast<const char*>(p[r] + off + kGgufM1PrefetchBytes), _MM_HINT_T0);
      _mm_prefetch(reinterpret_cast<const char*>(p[r] + off + kGgufM1PrefetchBytes + 64), _MM_HINT_T0);
      _mm_prefetch(reinterpret_cast<const char*>(p[r] + off + kGgufM1PrefetchBytes + 128), _MM_HINT_T0);
    }
    const int8_t* xq = x.q + b * 256;
    const __m128 dx = _mm_set1_ps(x.d256[b]);
    const uint64_t h = gguf_m1_ld16(p[0] + off + kDOff) | gguf_m1_ld16(p[1] + off + kDOff) << 16 |
                       gguf_m1_ld16(p[2] + off + kDOff) << 32 | gguf_m1_ld16(p[3] + off + kDOff) << 48;
    const __m128 d = _mm_cvtph_ps(_mm_cvtsi64_si128(int64_t(h)));
    if constexpr (T == GgufType::Q4_K) {
      const Q4kActs xa = q4k_acts(xq);
      __m128i mn[4];
      const int16_t* bs = x.bsum32 + b * 8;
      const __m256i s0 = fold256(q4k_block(p[0] + off, xa, bs, &mn[0]));
      const __m256i s1 = fold256(q4k_block(p[1] + off, xa, bs, &mn[1]));
      const __m256i s2 = fold256(q4k_block(p[2] + off, xa, bs, &mn[2]));
      const __m256i s3 = fold256(q4k_block(p[3] + off, xa, bs, &mn[3]));
      const uint64_t hm = gguf_m1_ld16(p[0] + off + 2) | gguf_m1_ld16(p[1] + off + 2) << 16 |
                          gguf_m1_ld16(p[2] + off + 2) << 32 | gguf_m1_ld16(p[3] + off + 2) << 48;
      const __m128 dmin = _mm_cvtph_ps(_mm_cvtsi64_si128(int64_t(hm)));
      acc = _mm_fmadd_ps(_mm_cvtepi32_ps(avx2_hsum4_i32(s0, s1, s2, s3)), _mm_mul_ps(d, dx), acc);
      acc = _mm_fnmadd_ps(_mm_cvtepi32_ps(gguf_m1_hsum4_128(mn[0], mn[1], mn[2], mn[3])), _mm_mul_ps(dmin, dx), acc);
    } else {
      const int16_t* bs = x.bsum16 + b * 16;
      const __m256i s0 = fold256(q6k_block(p[0] + off, xq, bs)), s1 = fold256(q6k_block(p[1] + off, xq, bs));
      const __m256i s2 = fold256(q6k_block(p[2] + off, xq, bs)), s3 = fold256(q6k_block(p[3] + off, xq, bs));
      acc = _mm_fmadd_ps(_mm_cvtepi32_ps(avx2_hsum4_i32(s0, s1, s2, s3)), _mm_mul_ps(d, dx), acc);
    }
  }
  float out[4];
  _mm_storeu_ps(out, acc);
  for (int r = 0; r < 4; ++r) {
    const int64_t row = r0 + r * stride;
    a.y[row] = out[r] + (a.bias ? a.bias[row] : 0.f);
  }
}

template <GgufType T>
TERN_M1K_AVX512 void gemv_m1(const GgufActs& x, const MatmulArgs& a, int64_t n0, int64_t n1) {
  const int64_t part = (n1 - n0) / 4;
  for (int64_t b = 0; b < part; ++b) rows4<T>(x, a, n0 + b, part);
  for (int64_t r = n0 + 4 * part; r < n1; ++r) rows4<T>(x, a, r, 0);
}

}  // namespace

void gguf_gemv_m1_k_avx512vnni(const GgufActs& x, const MatmulArgs& a, int64_t n0, int64_t n1) {
  switch (GgufType(a.w.gguf_type)) {
    case GgufType::Q4_K:
      return gemv_m1<GgufType::Q4_K>(x, a, n0, n1);
    case GgufType::Q6_K:
      return gemv_m1<GgufType::Q6_K>(x, a, n0, n1);
    default:
      return gguf_gemv_int8_avx2(a, n0, n1);
  }
}

}  // namespace tern::cpu
