// AVX-512 VNNI small-m GEMV (batched decode, m = 2..16 rows of x) against Q4_0 / Q8_0 / Q4_K / Q5_K / Q6_K: each weight
// row is streamed once and every block of it decoded once into zmm registers (codes and the per-lane
// sub-block scales), then multiplied with all m rows of x (prepared once per call, gguf_smallm_prepare).
// Per block and row of x only the integer dot remains:
//   Q4_K / Q5_K (256 values, 4 zmm of 64 codes): 4 × (vpmaddubsw code·x pairs, vpdpwssd · sub-block scale);
//   Q6_K: the same, its −32 offset one vpmaddwd of −32·scales with x's per-16 code sums (acc's start);
//   Q4_0 (two 32-blocks per zmm): 1 vpdpbusd of x + 128 (u8) with the signed codes (nibble − 8), from a
//     start of −128 · Σ codes per lane, computed once per weight block for all rows of x; Q8_0 the same
//     with its int8 codes as loaded.
// The int32 sums of 4 rows of x ("quad") are transposed and added into one zmm (lane 4L + i: row i,
// 128-bit lane L), converted once and scaled by (weight scale) · (x scale, the dxq table) in f32: per
// block a quad costs 6 shuffles/adds, 1 vcvtdq2ps, 1 multiply and 1 FMA instead of 4 reductions.
// Q4_K / Q5_K's min term Σ_j m_j X_j (X: x's code sums per 32) is one vpmaddwd per quad against the mins table.
// GCC 12's AVX-512 intrinsics start from an "undefined" vector that -Wmaybe-uninitialized reports once
// inlined (see matmul_avx512_util.h); the code is fine.
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"

#include <immintrin.h>

#include <cstring>

#include "kernels/cpu/gguf_kernels.h"
#include "kernels/cpu/gguf_m1_avx2_util.h"

#define TERN_SMALLM_AVX512 \
  __attribute__((target("avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512dq,avx512vnni")))

namespace tern::cpu {

namespace {

// Lane 4L + i = Σ of a_i's four int32 in 128-bit lane L.
TERN_SMALLM_AVX512 inline __m512i hsum4x(__m512i a0, __m512i a1, __m512i a2, __m512i a3) {
  const __m512i t01 = _mm512_add_epi32(_mm512_unpacklo_epi32(a0, a1), _mm512_unpackhi_epi32(a0, a1));
  const __m512i t23 = _mm512_add_epi32(_mm512_unpacklo_epi32(a2, a3), _mm512_unpackhi_epi32(a2, a3));
  return _mm512_add_epi32(_mm512_unpacklo_epi64(t01, t23), _mm512_unpackhi_epi64(t01, t23));
}

// Quad q's lane layout from acc[4q..4q+3] (rows past M are zero).
template <int M>
TERN_SMALLM_AVX512 inline __m512i quad_sum(const __m512i* acc, int q) {
  const __m512i z = _mm512_setzero_si512();
  const int i = 4 * q;
  return hsum4x(acc[i], i + 1 < M ? acc[i + 1] : z, i + 2 < M ? acc[i + 2] : z, i + 3 < M ? acc[i + 3] : z);
}

// y[4q + i, j] = Σ_L f[q][4L + i] + bias[j] for the rows that exist.
template <int M>
TERN_SMALLM_AVX512 inline void store_col(const __m512* f, const MatmulArgs& a, int64_t j) {
  const int64_t n = a.w.rows;
  const float bias = a.bias ? a.bias[j] : 0.f;
  for (int q = 0; q < (M + 3) / 4; ++q) {
    const __m256 s = _mm256_add_ps(_mm512_castps512_ps256(f[q]), _mm512_extractf32x8_ps(f[q], 1));
    float o[4];
    _mm_storeu_ps(o, _mm_add_ps(_mm256_castps256_ps128(s), _mm256_extractf128_ps(s, 1)));
    for (int i = 0; i < 4 && 4 * q + i < M; ++i) a.y[(4 * q + i) * n + j] = o[i] + bias;
  }
}

TERN_SMALLM_AVX512 inline void prefetch3(const uint8_t* p) {
  _mm_prefetch(reinterpret_cast<const char*>(p + kGgufM1PrefetchBytes), _MM_HINT_T0);
  _mm_prefetch(reinterpret_cast<const char*>(p + kGgufM1PrefetchBytes + 64), _MM_HINT_T0);
  _mm_prefetch(reinterpret_cast<const char*>(p + kGgufM1PrefetchBytes + 128), _MM_HINT_T0);
}

// sc: 8 int16 scales in every 128-bit lane -> scale s0 in every word of lanes 0-1, s1 in lanes 2-3.
TERN_SMALLM_AVX512 inline __m512i pick_scales(__m512i sc, int s0, int s1) {
  const __m256i a = _mm256_set1_epi16(int16_t(0x0100 + 0x0202 * s0));
  const __m256i b = _mm256_set1_epi16(int16_t(0x0100 + 0x0202 * s1));
  return _mm512_shuffle_epi8(sc, _mm512_inserti64x4(_mm512_castsi256_si512(a), b, 1));
}

// Q4_K row j: 144-byte blocks {f16 d, dmin; u8 scales[12]; u8 qs[128]}. Chunk c (32 bytes of qs): low
// nibbles are sub-block 2c (x [64c, +32)), high nibbles 2c + 1 (x [64c + 32, +32)): one zmm [low | high].
// Q5 (Q5_K, 176 bytes): u8 qh[32] before qs; bits 2c / 2c + 1 of qh[l] are bit 4 of those codes (0..31,
// vpmaddubsw pair sums ≤ 2·31·127).
template <int M, bool Q5>
TERN_SMALLM_AVX512 void q4k_col(const GgufSmallmActs& x, const MatmulArgs& a, int64_t j) {
  constexpr int NQ = (M + 3) / 4;
  const int64_t nqx = x.quads;  // the tables' quads per block (>= NQ)
  constexpr int64_t kBB = Q5 ? 176 : 144, kQs = Q5 ? 48 : 16;
  const int64_t nb = a.w.cols / 256;
  const uint8_t* row = static_cast<const uint8_t*>(a.w.data) + size_t(j) * size_t(nb * kBB);
  const __m512i one = _mm512_set1_epi8(1);
  const __m512i m4 = _mm512_set1_epi8(0x0F);
  const __m512i shift = _mm512_inserti64x4(_mm512_setzero_si512(), _mm256_set1_epi16(4), 1);
  const __m512i spread = _mm512_setr_epi32(0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3);
  __m512 f[NQ];
  for (int q = 0; q < NQ; ++q) f[q] = _mm512_setzero_ps();
  for (int64_t b = 0; b < nb; ++b) {
    const uint8_t* blk = row + b * kBB;
    prefetch3(blk);
    __m512i qh;
    if constexpr (Q5) qh = _mm512_broadcast_i64x4(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(blk + 16)));
    uint32_t u[3];
    std::memcpy(u, blk + 4, 12);
    const uint32_t sc_lo = u[0] & 0x3f3f3f3f, mn_lo = u[1] & 0x3f3f3f3f;
    const uint32_t sc_hi = (u[2] & 0x0f0f0f0f) | (((u[0] >> 6) & 0x03030303) << 4);
    const uint32_t mn_hi = ((u[2] >> 4) & 0x0f0f0f0f) | (((u[1] >> 6) & 0x03030303) << 4);
    const __m256i sm = _mm256_cvtepu8_epi16(_mm_setr_epi32(int(sc_lo), int(sc_hi), int(mn_lo), int(mn_hi)));
    const __m512i sc = _mm512_broadcast_i32x4(_mm256_castsi256_si128(sm));
    // dword p of mn = (m_{2L}, m_{2L+1}) with L = p / 4: the mins table's pairs.
    const __m512i mn = _mm512_permutexvar_epi32(spread, _mm512_zextsi256_si512(_mm256_zextsi128_si256(
                                                            _mm256_extracti128_si256(sm, 1))));
    uint32_t dh;
    std::memcpy(&dh, blk, 4);
    const __m128 dd = _mm_cvtph_ps(_mm_cvtsi32_si128(int(dh)));  // [d, dmin]
    const __m512 dv = _mm512_broadcastss_ps(dd), dmv = _mm512_broadcastss_ps(_mm_movehdup_ps(dd));
    __m512i acc[M];
    for (int i = 0; i < M; ++i) acc[i] = _mm512_setzero_si512();
#pragma GCC unroll 4
    for (int c = 0; c < 4; ++c) {
      const __m512i v = _mm512_broadcast_i64x4(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(blk + kQs + 32 * c)));
      __m512i codes = _mm512_and_si512(_mm512_srlv_epi16(v, shift), m4);
      if constexpr (Q5) {  // bit 2c (lower half) / 2c + 1 (upper half) of qh -> bit 4
        const __m512i hs = _mm512_add_epi16(_mm512_srli_epi16(shift, 2), _mm512_set1_epi16(int16_t(2 * c)));
        codes = _mm512_or_si512(codes, _mm512_slli_epi16(_mm512_and_si512(_mm512_srlv_epi16(qh, hs), one), 4));
      }
      const __m512i s = pick_scales(sc, 2 * c, 2 * c + 1);
#pragma GCC unroll 16
      for (int i = 0; i < M; ++i) {
        const __m512i xv = _mm512_loadu_si512(x.row[i].q + b * 256 + 64 * c);
        acc[i] = _mm512_dpwssd_epi32(acc[i], _mm512_maddubs_epi16(codes, xv), s);
      }
    }
#pragma GCC unroll 4
    for (int q = 0; q < NQ; ++q) {
      const __m512 dx = _mm512_loadu_ps(x.dxq + (b * nqx + q) * 16);
      const __m512i mm = _mm512_madd_epi16(mn, _mm512_loadu_si512(x.mins + (b * nqx + q) * 32));
      f[q] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(quad_sum<M>(acc, q)), _mm512_mul_ps(dv, dx), f[q]);
      f[q] = _mm512_fnmadd_ps(_mm512_cvtepi32_ps(mm), _mm512_mul_ps(dmv, dx), f[q]);
    }
  }
  store_col<M>(f, a, j);
}

// Q6_K row j: 210-byte blocks {u8 ql[128]; u8 qh[64]; i8 scales[16]; f16 d}, decoded as in
// gguf_gemv_m1_k_avx512.cpp: half h gives two zmm of 64 codes (x [128h, +64) and [128h + 64, +64)).
template <int M>
TERN_SMALLM_AVX512 void q6k_col(const GgufSmallmActs& x, const MatmulArgs& a, int64_t j) {
  constexpr int NQ = (M + 3) / 4;
  const int64_t nqx = x.quads;  // the tables' quads per block (>= NQ)
  const int64_t nb = a.w.cols / 256;
  const uint8_t* row = static_cast<const uint8_t*>(a.w.data) + size_t(j) * size_t(nb * 210);
  const __m512i m4 = _mm512_set1_epi8(0x0F), m2 = _mm512_set1_epi8(3);
  const __m512i lane = _mm512_srli_epi16(
      _mm512_set_epi16(31, 30, 29, 28, 27, 26, 25, 24, 23, 22, 21, 20, 19, 18, 17, 16, 15, 14, 13, 12, 11, 10, 9, 8, 7,
                       6, 5, 4, 3, 2, 1, 0),
      3);  // word w -> its 128-bit lane
  const __m512i sh_lo = _mm512_inserti64x4(_mm512_set1_epi16(0), _mm256_set1_epi16(2), 1);
  const __m512i sh_hi = _mm512_add_epi16(sh_lo, _mm512_set1_epi16(4));
  __m512 f[NQ];
  for (int q = 0; q < NQ; ++q) f[q] = _mm512_setzero_ps();
  for (int64_t b = 0; b < nb; ++b) {
    const uint8_t* blk = row + b * 210;
    prefetch3(blk);
    _mm_prefetch(reinterpret_cast<const char*>(blk + kGgufM1PrefetchBytes + 192), _MM_HINT_T0);
    const __m256i sc16 = _mm256_cvtepi8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(blk + 192)));
    const __m512i sc = _mm512_zextsi256_si512(sc16);
    const __m256i negc = _mm256_sub_epi16(_mm256_setzero_si256(), _mm256_slli_epi16(sc16, 5));  // −32·sc, |·| ≤ 4096
    const __m512 dv = _mm512_set1_ps(_cvtsh_ss(uint16_t(gguf_m1_ld16(blk + 208))));
    __m512i acc[M];
    for (int i = 0; i < M; ++i)
      acc[i] = _mm512_zextsi256_si512(
          _mm256_madd_epi16(negc, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x.row[i].bsum16 + b * 16))));
#pragma GCC unroll 2
    for (int h = 0; h < 2; ++h) {
      const __m512i ql = _mm512_loadu_si512(blk + h * 64);
      const __m512i qh = _mm512_broadcast_i64x4(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(blk + 128 + h * 32)));
      const __m512i c_lo = _mm512_or_si512(_mm512_and_si512(ql, m4),
                                           _mm512_slli_epi16(_mm512_and_si512(_mm512_srlv_epi16(qh, sh_lo), m2), 4));
      const __m512i c_hi = _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi16(ql, 4), m4),
                                           _mm512_slli_epi16(_mm512_and_si512(_mm512_srlv_epi16(qh, sh_hi), m2), 4));
      const __m512i s_lo = _mm512_permutexvar_epi16(_mm512_add_epi16(lane, _mm512_set1_epi16(int16_t(8 * h))), sc);
      const __m512i s_hi = _mm512_permutexvar_epi16(_mm512_add_epi16(lane, _mm512_set1_epi16(int16_t(8 * h + 4))), sc);
#pragma GCC unroll 16
      for (int i = 0; i < M; ++i) {
        const int8_t* xq = x.row[i].q + b * 256 + h * 128;
        acc[i] = _mm512_dpwssd_epi32(acc[i], _mm512_maddubs_epi16(c_lo, _mm512_loadu_si512(xq)), s_lo);
        acc[i] = _mm512_dpwssd_epi32(acc[i], _mm512_maddubs_epi16(c_hi, _mm512_loadu_si512(xq + 64)), s_hi);
      }
    }
#pragma GCC unroll 4
    for (int q = 0; q < NQ; ++q) {
      const __m512 dx = _mm512_loadu_ps(x.dxq + (b * nqx + q) * 16);
      f[q] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(quad_sum<M>(acc, q)), _mm512_mul_ps(dv, dx), f[q]);
    }
  }
  store_col<M>(f, a, j);
}

// Q4_0 row j: 18-byte blocks {f16 d; u8 qs[16]}, two per zmm: 128-bit lanes [lo(b), hi(b), lo(b+1), hi(b+1)].
// Q8 (Q8_0): 34-byte blocks {f16 d; i8 qs[32]}, two per zmm as they lie (256-bit halves b, b + 1); vpdpbusd
// sums its four u8 × s8 products in int32 without saturation, so x + 128 (≤ 255) × −128..127 is exact.
template <int M, bool Q8>
TERN_SMALLM_AVX512 void q4_0_col(const GgufSmallmActs& x, const MatmulArgs& a, int64_t j) {
  constexpr int NQ = (M + 3) / 4;
  const int64_t nqx = x.quads;  // the tables' quads per block (>= NQ)
  constexpr int64_t kBB = Q8 ? 34 : 18;
  const int64_t np = a.w.cols / 64;
  const uint8_t* row = static_cast<const uint8_t*>(a.w.data) + size_t(j) * size_t(np * 2 * kBB);
  const __m512i u128 = _mm512_set1_epi8(char(0x80));
  const __m512i two = _mm512_setr_epi32(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1);
  __m512 f[NQ];
  for (int q = 0; q < NQ; ++q) f[q] = _mm512_setzero_ps();
  for (int64_t p = 0; p < np; ++p) {
    const uint8_t* b0 = row + p * 2 * kBB;
    if constexpr (Q8) {
      _mm_prefetch(reinterpret_cast<const char*>(b0 + kGgufSmallmQ8PrefetchBytes), _MM_HINT_T0);
      _mm_prefetch(reinterpret_cast<const char*>(b0 + kGgufSmallmQ8PrefetchBytes + 64), _MM_HINT_T0);
    } else if ((p & 1) == 0) {
      _mm_prefetch(reinterpret_cast<const char*>(b0 + kGgufM1PrefetchBytes), _MM_HINT_T0);
      _mm_prefetch(reinterpret_cast<const char*>(b0 + kGgufM1PrefetchBytes + 64), _MM_HINT_T0);
    }
    __m512i ws;
    if constexpr (Q8) {
      ws = _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(b0 + 2))),
                              _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b0 + kBB + 2)), 1);
    } else {
      const __m512i m4 = _mm512_set1_epi8(0x0F), eight = _mm512_set1_epi8(8);
      const __m512i shv = _mm512_setr_epi64(0, 0, 4, 4, 0, 0, 4, 4);
      const __m512i v = _mm512_inserti64x4(
          _mm512_castsi256_si512(_mm256_broadcastsi128_si256(_mm_loadu_si128(reinterpret_cast<const __m128i*>(b0 + 2)))),
          _mm256_broadcastsi128_si256(_mm_loadu_si128(reinterpret_cast<const __m128i*>(b0 + 20))), 1);
      ws = _mm512_sub_epi8(_mm512_and_si512(_mm512_srlv_epi64(v, shv), m4), eight);
    }
    // x enters as xq + 128: Σ (xq + 128)·w − 128·Σ w = Σ xq·w.
    const __m512i start = _mm512_sub_epi32(_mm512_setzero_si512(), _mm512_dpbusd_epi32(_mm512_setzero_si512(), u128, ws));
    const uint32_t dh = uint32_t(gguf_m1_ld16(b0)) | uint32_t(gguf_m1_ld16(b0 + kBB)) << 16;
    const __m512 dv = _mm512_permutexvar_ps(two, _mm512_castps128_ps512(_mm_cvtph_ps(_mm_cvtsi32_si128(int(dh)))));
    __m512i acc[M];
#pragma GCC unroll 16
    for (int i = 0; i < M; ++i)
      acc[i] = _mm512_dpbusd_epi32(start, _mm512_loadu_si512(x.row[i].q + p * 64), ws);
#pragma GCC unroll 4
    for (int q = 0; q < NQ; ++q) {
      const __m512 dx = _mm512_loadu_ps(x.dxq + (p * nqx + q) * 16);
      f[q] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(quad_sum<M>(acc, q)), _mm512_mul_ps(dv, dx), f[q]);
    }
  }
  store_col<M>(f, a, j);
}

template <int M>
TERN_SMALLM_AVX512 void run(const GgufSmallmActs& x, const MatmulArgs& a, int64_t n0, int64_t n1);

// Q4_0 / Q8_0 with M > 8 go as two passes of 8 and M − 8 rows per weight row (the second reads it from L1):
// 16 rows of x at k = 8192 are 128 KB of codes, past L1, and one pass then loads them all per 64 weights
// (bench_gguf_smallm --m 16 --threads 1 --cpu-time, Q8_0 2048x8192: 6.25 ms in one pass, 4.43 ms in two;
// 2048x2048 1.07-1.13 ms either way). The K-quants' decode costs more than that, so they stay in one pass
// (Q4_K 2048x8192 3.18 ms vs 3.42, Q6_K 3.9-4.0 vs 4.3).
inline bool split_rows(GgufType t) { return t == GgufType::Q8_0 || t == GgufType::Q4_0; }
template <int M>
TERN_SMALLM_AVX512 void run_split(const GgufSmallmActs& x, const MatmulArgs& a, int64_t n0, int64_t n1) {
  const GgufSmallmActs hi = gguf_smallm_rows_from(x, 2);
  MatmulArgs ahi = a;
  ahi.y = a.y + 8 * a.w.rows, ahi.m = M - 8;
  for (int64_t j = n0; j < n1; ++j) {
    run<8>(x, a, j, j + 1);
    run<M - 8>(hi, ahi, j, j + 1);
  }
}

template <int M>
TERN_SMALLM_AVX512 void run(const GgufSmallmActs& x, const MatmulArgs& a, int64_t n0, int64_t n1) {
  if constexpr (M > 8) {
    if (split_rows(x.type)) return run_split<M>(x, a, n0, n1);
  }
  switch (x.type) {
    case GgufType::Q4_K:
      for (int64_t j = n0; j < n1; ++j) q4k_col<M, false>(x, a, j);
      return;
    case GgufType::Q5_K:
      for (int64_t j = n0; j < n1; ++j) q4k_col<M, true>(x, a, j);
      return;
    case GgufType::Q6_K:
      for (int64_t j = n0; j < n1; ++j) q6k_col<M>(x, a, j);
      return;
    case GgufType::Q8_0:
      for (int64_t j = n0; j < n1; ++j) q4_0_col<M, true>(x, a, j);
      return;
    default:
      for (int64_t j = n0; j < n1; ++j) q4_0_col<M, false>(x, a, j);
      return;
  }
}

}  // namespace

void gguf_gemv_smallm_avx512vnni(const GgufSmallmActs& x, const MatmulArgs& a, int64_t n0, int64_t n1) {
  switch (x.m) {
    case 1: return run<1>(x, a, n0, n1);
    case 2: return run<2>(x, a, n0, n1);
    case 3: return run<3>(x, a, n0, n1);
    case 4: return run<4>(x, a, n0, n1);
    case 5: return run<5>(x, a, n0, n1);
    case 6: return run<6>(x, a, n0, n1);
    case 7: return run<7>(x, a, n0, n1);
    case 8: return run<8>(x, a, n0, n1);
    case 9: return run<9>(x, a, n0, n1);
    case 10: return run<10>(x, a, n0, n1);
    case 11: return run<11>(x, a, n0, n1);
    case 12: return run<12>(x, a, n0, n1);
    case 13: return run<13>(x, a, n0, n1);
    case 14: return run<14>(x, a, n0, n1);
    case 15: return run<15>(x, a, n0, n1);
    default: return run<16>(x, a, n0, n1);
  }
}

}  // namespace tern::cpu
