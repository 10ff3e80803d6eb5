// AVX2 small-m GEMV (batched decode, m = 2..16 rows of x) against Q4_0 / Q8_0 / Q4_K / Q5_K / Q6_K, for CPUs without
// AVX-512: the structure of gguf_gemv_smallm_avx512.cpp (each weight block decoded once, then an integer
// dot with every row of x; the int32 sums of 4 rows transposed and added into one vector, lane 4L + i,
// and scaled once in f32) on ymm, with vpmaddubsw + vpmaddwd (+ vpaddd) in place of the VNNI steps.
// With 16 ymm registers the block is decoded one chunk (2 sub-blocks) at a time and the m int32
// accumulators stay live across the chunks. Same activations and tables (gguf_smallm_prepare).
#include <immintrin.h>

#include <cstring>

#include "kernels/cpu/gguf_kernels.h"
#include "kernels/cpu/gguf_m1_avx2_util.h"

#define TERN_SMALLM_AVX2 __attribute__((target("avx2,fma,f16c")))

namespace tern::cpu {

namespace {

// Lane 4L + i = Σ of a_i's four int32 in 128-bit lane L.
TERN_SMALLM_AVX2 inline __m256i hsum4x(__m256i a0, __m256i a1, __m256i a2, __m256i a3) {
  const __m256i t01 = _mm256_add_epi32(_mm256_unpacklo_epi32(a0, a1), _mm256_unpackhi_epi32(a0, a1));
  const __m256i t23 = _mm256_add_epi32(_mm256_unpacklo_epi32(a2, a3), _mm256_unpackhi_epi32(a2, a3));
  return _mm256_add_epi32(_mm256_unpacklo_epi64(t01, t23), _mm256_unpackhi_epi64(t01, t23));
}

template <int M>
TERN_SMALLM_AVX2 inline __m256i quad_sum(const __m256i* acc, int q) {
  const __m256i z = _mm256_setzero_si256();
  const int i = 4 * q;
  return hsum4x(acc[i], i + 1 < M ? acc[i + 1] : z, i + 2 < M ? acc[i + 2] : z, i + 3 < M ? acc[i + 3] : z);
}

template <int M>
TERN_SMALLM_AVX2 inline void store_col(const __m256* f, const MatmulArgs& a, int64_t j) {
  const int64_t n = a.w.rows;
  const float bias = a.bias ? a.bias[j] : 0.f;
  for (int q = 0; q < (M + 3) / 4; ++q) {
    float o[4];
    _mm_storeu_ps(o, _mm_add_ps(_mm256_castps256_ps128(f[q]), _mm256_extractf128_ps(f[q], 1)));
    for (int i = 0; i < 4 && 4 * q + i < M; ++i) a.y[(4 * q + i) * n + j] = o[i] + bias;
  }
}

TERN_SMALLM_AVX2 inline __m256i ld(const void* p) { return _mm256_loadu_si256(static_cast<const __m256i*>(p)); }

// Q4_K / Q5_K row j (layouts in gguf_gemv_smallm_avx512.cpp): chunk c of 32 bytes, low nibbles sub-block 2c.
template <int M, bool Q5>
TERN_SMALLM_AVX2 void q4k_col(const GgufSmallmActs& x, const MatmulArgs& a, int64_t j) {
  constexpr int NQ = (M + 3) / 4;
  constexpr int64_t kBB = Q5 ? 176 : 144, kQs = Q5 ? 48 : 16;
  const int64_t nb = a.w.cols / 256;
  const uint8_t* row = static_cast<const uint8_t*>(a.w.data) + size_t(j) * size_t(nb * kBB);
  const __m256i one = _mm256_set1_epi8(1);
  const __m256i m4 = _mm256_set1_epi8(0x0F);
  __m256 f[NQ];
  for (int q = 0; q < NQ; ++q) f[q] = _mm256_setzero_ps();
  for (int64_t b = 0; b < nb; ++b) {
    const uint8_t* blk = row + b * kBB;
    _mm_prefetch(reinterpret_cast<const char*>(blk + kGgufM1PrefetchBytes), _MM_HINT_T0);
    _mm_prefetch(reinterpret_cast<const char*>(blk + kGgufM1PrefetchBytes + 64), _MM_HINT_T0);
    _mm_prefetch(reinterpret_cast<const char*>(blk + kGgufM1PrefetchBytes + 128), _MM_HINT_T0);
    uint32_t u[3];
    std::memcpy(u, blk + 4, 12);
    const uint32_t sc_lo = u[0] & 0x3f3f3f3f, mn_lo = u[1] & 0x3f3f3f3f;
    const uint32_t sc_hi = (u[2] & 0x0f0f0f0f) | (((u[0] >> 6) & 0x03030303) << 4);
    const uint32_t mn_hi = ((u[2] >> 4) & 0x0f0f0f0f) | (((u[1] >> 6) & 0x03030303) << 4);
    const __m256i sm = _mm256_cvtepu8_epi16(_mm_setr_epi32(int(sc_lo), int(sc_hi), int(mn_lo), int(mn_hi)));
    const __m256i sc = _mm256_permute4x64_epi64(sm, 0x44);  // scales 0..7 in both 128-bit halves
    __m256i acc[M];
    for (int i = 0; i < M; ++i) acc[i] = _mm256_setzero_si256();
#pragma GCC unroll 4
    for (int c = 0; c < 4; ++c) {
      const __m256i qv = ld(blk + kQs + 32 * c);
      __m256i lo = _mm256_and_si256(qv, m4), hi = _mm256_and_si256(_mm256_srli_epi16(qv, 4), m4);
      if constexpr (Q5) {  // bits 2c / 2c + 1 of qh -> bit 4 of the low / high codes
        const __m256i qh = ld(blk + 16);
        lo = _mm256_or_si256(lo, _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 2 * c), one), 4));
        hi = _mm256_or_si256(hi, _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 2 * c + 1), one), 4));
      }
      const __m256i s0 = _mm256_shuffle_epi8(sc, _mm256_set1_epi16(int16_t(0x0100 + 0x0202 * (2 * c))));
      const __m256i s1 = _mm256_shuffle_epi8(sc, _mm256_set1_epi16(int16_t(0x0100 + 0x0202 * (2 * c + 1))));
#pragma GCC unroll 8
      for (int i = 0; i < M; ++i) {
        const int8_t* xq = x.row[i].q + b * 256 + 64 * c;
        const __m256i p0 = _mm256_madd_epi16(_mm256_maddubs_epi16(lo, ld(xq)), s0);
        const __m256i p1 = _mm256_madd_epi16(_mm256_maddubs_epi16(hi, ld(xq + 32)), s1);
        acc[i] = _mm256_add_epi32(acc[i], _mm256_add_epi32(p0, p1));
      }
    }
    // Mins: table lanes 0-7 pair sub-blocks (0,1) | (2,3), lanes 8-15 (4,5) | (6,7); both fold onto lane 4L + i.
    const __m256i mn = _mm256_castsi128_si256(_mm256_extracti128_si256(sm, 1));
    const __m256i mn_a = _mm256_permutevar8x32_epi32(mn, _mm256_setr_epi32(0, 0, 0, 0, 1, 1, 1, 1));
    const __m256i mn_b = _mm256_permutevar8x32_epi32(mn, _mm256_setr_epi32(2, 2, 2, 2, 3, 3, 3, 3));
    uint32_t dh;
    std::memcpy(&dh, blk, 4);
    const __m128 dd = _mm_cvtph_ps(_mm_cvtsi32_si128(int(dh)));  // [d, dmin]
    const __m256 dv = _mm256_broadcastss_ps(dd), dmv = _mm256_broadcastss_ps(_mm_movehdup_ps(dd));
#pragma GCC unroll 2
    for (int q = 0; q < NQ; ++q) {
      const __m256 dx = _mm256_loadu_ps(x.dxq + (b * x.quads + q) * 16);
      const int16_t* mt = x.mins + (b * x.quads + q) * 32;
      const __m256i mm = _mm256_add_epi32(_mm256_madd_epi16(mn_a, ld(mt)), _mm256_madd_epi16(mn_b, ld(mt + 16)));
      f[q] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(quad_sum<M>(acc, q)), _mm256_mul_ps(dv, dx), f[q]);
      f[q] = _mm256_fnmadd_ps(_mm256_cvtepi32_ps(mm), _mm256_mul_ps(dmv, dx), f[q]);
    }
  }
  store_col<M>(f, a, j);
}

// Q6_K row j, decoded as gguf_gemv_m1_k_avx2.cpp: half h, quarter r -> 32 codes for x [128h + 32r, +32),
// sub-blocks 8h + 2r (lower 128 bits) and 8h + 2r + 1 (upper).
template <int M>
TERN_SMALLM_AVX2 void q6k_col(const GgufSmallmActs& x, const MatmulArgs& a, int64_t j) {
  constexpr int NQ = (M + 3) / 4;
  const int64_t nb = a.w.cols / 256;
  const uint8_t* row = static_cast<const uint8_t*>(a.w.data) + size_t(j) * size_t(nb * 210);
  const __m256i m4 = _mm256_set1_epi8(0x0F), m2 = _mm256_set1_epi8(3);
  __m256 f[NQ];
  for (int q = 0; q < NQ; ++q) f[q] = _mm256_setzero_ps();
  for (int64_t b = 0; b < nb; ++b) {
    const uint8_t* blk = row + b * 210;
    for (int l = 0; l < 4; ++l)
      _mm_prefetch(reinterpret_cast<const char*>(blk + kGgufM1PrefetchBytes + 64 * l), _MM_HINT_T0);
    const __m256i sc16 = _mm256_cvtepi8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(blk + 192)));
    const __m256i negc = _mm256_sub_epi16(_mm256_setzero_si256(), _mm256_slli_epi16(sc16, 5));  // −32·sc
    const __m256 dv = _mm256_set1_ps(_cvtsh_ss(uint16_t(gguf_m1_ld16(blk + 208))));
    __m256i acc[M];
    for (int i = 0; i < M; ++i) acc[i] = _mm256_madd_epi16(negc, ld(x.row[i].bsum16 + b * 16));
#pragma GCC unroll 2
    for (int h = 0; h < 2; ++h) {
      const __m256i sc = _mm256_permute4x64_epi64(sc16, h == 0 ? 0x44 : 0xEE);
      const __m256i ql0 = ld(blk + h * 64), ql1 = ld(blk + h * 64 + 32), qh = ld(blk + 128 + h * 32);
#pragma GCC unroll 4
      for (int r = 0; r < 4; ++r) {
        const __m256i lo = r == 0   ? _mm256_and_si256(ql0, m4)
                           : r == 1 ? _mm256_and_si256(ql1, m4)
                           : r == 2 ? _mm256_and_si256(_mm256_srli_epi16(ql0, 4), m4)
                                    : _mm256_and_si256(_mm256_srli_epi16(ql1, 4), m4);
        const __m256i codes =
            _mm256_or_si256(lo, _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 2 * r), m2), 4));
        const int e0 = 2 * r, e1 = 2 * r + 1;  // int16 scale elements of the two halves
        const __m256i ctl = _mm256_setr_m128i(_mm_set1_epi16(int16_t(0x0100 + 0x0202 * e0)),
                                              _mm_set1_epi16(int16_t(0x0100 + 0x0202 * e1)));
        const __m256i s = _mm256_shuffle_epi8(sc, ctl);
#pragma GCC unroll 8
        for (int i = 0; i < M; ++i) {
          const __m256i p = _mm256_maddubs_epi16(codes, ld(x.row[i].q + b * 256 + h * 128 + r * 32));
          acc[i] = _mm256_add_epi32(acc[i], _mm256_madd_epi16(p, s));
        }
      }
    }
#pragma GCC unroll 2
    for (int q = 0; q < NQ; ++q) {
      const __m256 dx = _mm256_loadu_ps(x.dxq + (b * x.quads + q) * 16);
      f[q] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(quad_sum<M>(acc, q)), _mm256_mul_ps(dv, dx), f[q]);
    }
  }
  store_col<M>(f, a, j);
}

// Q4_0 row j: one 32-block per ymm (codes in value order), x as u8 xq + 128.
// Q8 (Q8_0): 34-byte blocks {f16 d; i8 qs[32]}. (xq + 128)·w pairs reach 2·255·128 and would saturate
// vpmaddubsw, so x is flipped back to signed xq and the sign moves onto it: |w| (u8, ≤ 128) × sign(xq, w)
// (|xq| ≤ 127), pair sums ≤ 2·128·127.
template <int M, bool Q8>
TERN_SMALLM_AVX2 void q4_0_col(const GgufSmallmActs& x, const MatmulArgs& a, int64_t j) {
  constexpr int NQ = (M + 3) / 4;
  constexpr int64_t kBB = Q8 ? 34 : 18;
  const int64_t nb = a.w.cols / 32;
  const uint8_t* row = static_cast<const uint8_t*>(a.w.data) + size_t(j) * size_t(nb * kBB);
  const __m256i u128 = _mm256_set1_epi8(char(0x80)), ones = _mm256_set1_epi16(1);
  __m256 f[NQ];
  for (int q = 0; q < NQ; ++q) f[q] = _mm256_setzero_ps();
  for (int64_t b = 0; b < nb; ++b) {
    const uint8_t* blk = row + b * kBB;
    if (Q8 ? (b & 1) == 0 : (b & 3) == 0) {
      const int64_t ahead = Q8 ? kGgufSmallmQ8PrefetchBytes : kGgufM1PrefetchBytes;
      _mm_prefetch(reinterpret_cast<const char*>(blk + ahead), _MM_HINT_T0);
      _mm_prefetch(reinterpret_cast<const char*>(blk + ahead + 64), _MM_HINT_T0);
    }
    const __m256 dv = _mm256_set1_ps(_cvtsh_ss(uint16_t(gguf_m1_ld16(blk))));
    __m256i acc[M];
    if constexpr (Q8) {
      const __m256i ws = ld(blk + 2), wa = _mm256_sign_epi8(ws, ws);
#pragma GCC unroll 8
      for (int i = 0; i < M; ++i) {
        const __m256i xs = _mm256_sign_epi8(_mm256_xor_si256(ld(x.row[i].q + b * 32), u128), ws);
        acc[i] = _mm256_madd_epi16(_mm256_maddubs_epi16(wa, xs), ones);
      }
    } else {
      const __m256i m4 = _mm256_set1_epi8(0x0F), eight = _mm256_set1_epi8(8), shv = _mm256_setr_epi64x(0, 0, 4, 4);
      const __m256i v = _mm256_broadcastsi128_si256(_mm_loadu_si128(reinterpret_cast<const __m128i*>(blk + 2)));
      const __m256i ws = _mm256_sub_epi8(_mm256_and_si256(_mm256_srlv_epi64(v, shv), m4), eight);
      // Pair sums |(xq + 128)·w| ≤ 2·255·8: no vpmaddubsw saturation. Σ (xq + 128)·w − 128·Σ w = Σ xq·w.
      const __m256i start = _mm256_sub_epi32(_mm256_setzero_si256(), _mm256_madd_epi16(_mm256_maddubs_epi16(u128, ws), ones));
#pragma GCC unroll 8
      for (int i = 0; i < M; ++i)
        acc[i] = _mm256_add_epi32(start, _mm256_madd_epi16(_mm256_maddubs_epi16(ld(x.row[i].q + b * 32), ws), ones));
    }
#pragma GCC unroll 2
    for (int q = 0; q < NQ; ++q) {
      const __m256 dx = _mm256_loadu_ps(x.dxq + ((b / 2) * x.quads + q) * 16 + (b % 2) * 8);
      f[q] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(quad_sum<M>(acc, q)), _mm256_mul_ps(dv, dx), f[q]);
    }
  }
  store_col<M>(f, a, j);
}

// Views of x and y from quad v on, for every quad of the call.
struct RowViews {
  GgufSmallmActs x[kGgufSmallmMaxRows / 4];
  MatmulArgs a[kGgufSmallmMaxRows / 4];
};

// One weight row, the M rows of x from quad V on. K-quants go 4 rows per pass, the later passes reading the
// weight row from L1: 8 int32 accumulators beside a decoded chunk spill 16 ymm registers (measured: 8 rows
// in one pass cost more per row than 4). Q4_0 / Q8_0 go 8 rows per pass (measured faster than 4 + 4).
template <int M, int V = 0>
TERN_SMALLM_AVX2 void col(const RowViews& v, int64_t j) {
  const GgufSmallmActs& x = v.x[V];
  const MatmulArgs& a = v.a[V];
  switch (x.type) {
    case GgufType::Q4_K:
    case GgufType::Q5_K:
    case GgufType::Q6_K:
      if constexpr (M > 4) {
        col<4, V>(v, j);
        col<M - 4, V + 1>(v, j);
      } else if (x.type == GgufType::Q4_K) {
        q4k_col<M, false>(x, a, j);
      } else if (x.type == GgufType::Q5_K) {
        q4k_col<M, true>(x, a, j);
      } else {
        q6k_col<M>(x, a, j);
      }
      return;
    default:
      if constexpr (M > 8) {
        col<8, V>(v, j);
        col<M - 8, V + 2>(v, j);
      } else if (x.type == GgufType::Q8_0) {
        q4_0_col<M, true>(x, a, j);
      } else {
        q4_0_col<M, false>(x, a, j);
      }
      return;
  }
}

template <int M>
TERN_SMALLM_AVX2 void run(const GgufSmallmActs& x, const MatmulArgs& a, int64_t n0, int64_t n1) {
  RowViews v;
  for (int q = 0; q < (M + 3) / 4; ++q) {
    v.x[q] = gguf_smallm_rows_from(x, q);
    v.a[q] = a;
    v.a[q].y = a.y + 4 * q * a.w.rows, v.a[q].m = M - 4 * q;
  }
  for (int64_t j = n0; j < n1; ++j) col<M>(v, j);
}

}  // namespace

void gguf_gemv_smallm_avx2(const GgufSmallmActs& x, const MatmulArgs& a, int64_t n0, int64_t n1) {
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
