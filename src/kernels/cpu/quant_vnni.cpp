// VNNI kernels for integer-activation formats (contract in quant_kernels.h): vpdpbusd multiplies
// unsigned by signed bytes and adds groups of four into int32 lanes in one instruction, with no
// 16-bit intermediate to saturate.
//   W8A8: vpdpbusd(|w|, sign(x, w)) (x in [-127, 127], so negating it never overflows).
//   Int4: vpdpbusd(q, xq) with codes 0..15 as the unsigned operand.
// AVX-VNNI is the VEX (256-bit) encoding on client cores; AVX-512-VNNI adds the 512-bit form used
// for W8A8 and the EVEX 256-bit form used for int4 blocks of 32.
// GCC 12's AVX-512 intrinsics start from an "undefined" vector that -Wmaybe-uninitialized reports
// once inlined (see matmul_avx512_util.h); the code is fine.
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"

#include "kernels/cpu/quant_avx2_util.h"


namespace tern::cpu {

namespace {

// Shared epilogue: the scalar tail of a W8A8 row and the store.
inline void w8a8_finish(const QuantActs& a, const WeightMatrix& w, float* y, const float* bias, int64_t i, int64_t r,
                        int64_t j, int32_t s) {
  const int64_t k = w.cols;
  const int8_t* q = static_cast<const int8_t*>(w.data) + r * k;
  for (int64_t t = j; t < k; ++t) s += int32_t(a.xq[i * k + t]) * int32_t(q[t]);
  y[i * w.rows + r] = float(s) * (w.scales[r] * a.xd[i]) + (bias ? bias[r] : 0.f);
}

template <int M>
struct W8A8AvxVnni {
  TERN_TARGET_AVXVNNI static void run(const QuantActs& a, const WeightMatrix& w, float* y, const float* bias,
                                      int64_t i0, int64_t r) {
    const int64_t k = w.cols;
    const int8_t* q = static_cast<const int8_t*>(w.data) + r * k;
    __m256i acc[M];
    for (int i = 0; i < M; ++i) acc[i] = _mm256_setzero_si256();
    int64_t j = 0;
    for (; j + 32 <= k; j += 32) {
      const __m256i wv = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(q + j));
      const __m256i aw = _mm256_sign_epi8(wv, wv);
      for (int i = 0; i < M; ++i) {
        const __m256i xv = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(a.xq + (i0 + i) * k + j));
        acc[i] = _mm256_dpbusd_avx_epi32(acc[i], aw, _mm256_sign_epi8(xv, wv));
      }
    }
    for (int i = 0; i < M; ++i) w8a8_finish(a, w, y, bias, i0 + i, r, j, avx2_hsum_i32(acc[i]));
  }
};

template <int M>
struct W8A8Avx512Vnni {
  TERN_TARGET_AVX512VNNI static void run(const QuantActs& a, const WeightMatrix& w, float* y, const float* bias,
                                         int64_t i0, int64_t r) {
    const int64_t k = w.cols;
    const int8_t* q = static_cast<const int8_t*>(w.data) + r * k;
    __m512i acc[M];
    for (int i = 0; i < M; ++i) acc[i] = _mm512_setzero_si512();
    int64_t j = 0;
    for (; j + 64 <= k; j += 64) {
      const __m512i wv = _mm512_loadu_si512(q + j);
      const __m512i aw = _mm512_abs_epi8(wv);
      const __mmask64 neg = _mm512_movepi8_mask(wv);  // lanes where w < 0: negate x there
      for (int i = 0; i < M; ++i) {
        const __m512i xv = _mm512_loadu_si512(a.xq + (i0 + i) * k + j);
        const __m512i sx = _mm512_mask_sub_epi8(xv, neg, _mm512_setzero_si512(), xv);
        acc[i] = _mm512_dpbusd_epi32(acc[i], aw, sx);
      }
    }
    for (int i = 0; i < M; ++i) w8a8_finish(a, w, y, bias, i0 + i, r, j, _mm512_reduce_add_epi32(acc[i]));
  }
};

// One int4 row against M rows of x; DP is vpdpbusd in the encoding the target has. A macro, not a
// template, because each copy must be compiled under its own target attribute.
#define TERN_INT4_ROW_BODY(DP)                                                                         \
  const int64_t k = w.cols, gs = w.group, ng = k / gs;                                                 \
  const uint8_t* row = static_cast<const uint8_t*>(w.data) + r * (k / 2);                              \
  __m256 acc[M];                                                                                       \
  float zterm[M];                                                                                      \
  for (int i = 0; i < M; ++i) acc[i] = _mm256_setzero_ps(), zterm[i] = 0.f;                            \
  for (int64_t g = 0; g < ng; ++g) {                                                                   \
    __m256i gi[M];                                                                                     \
    for (int i = 0; i < M; ++i) gi[i] = _mm256_setzero_si256();                                        \
    for (int64_t j = g * gs; j < (g + 1) * gs; j += 32) {                                              \
      const __m256i qv = avx2_unpack_int4(row + j / 2);                                                \
      for (int i = 0; i < M; ++i)                                                                      \
        gi[i] = DP(gi[i], qv, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(a.xq + (i0 + i) * k + j))); \
    }                                                                                                  \
    const float s = w.scales[r * ng + g], z = w.zeros ? w.zeros[r * ng + g] : 8.0f;                    \
    for (int i = 0; i < M; ++i) {                                                                      \
      const int64_t xg = (i0 + i) * ng + g;                                                            \
      acc[i] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(gi[i]), _mm256_set1_ps(s * a.xd[xg]), acc[i]);       \
      zterm[i] += s * z * a.xs[xg];                                                                    \
    }                                                                                                  \
  }                                                                                                    \
  for (int i = 0; i < M; ++i) y[(i0 + i) * w.rows + r] = avx2_hsum(acc[i]) - zterm[i] + (bias ? bias[r] : 0.f);

template <int M>
struct Int4AvxVnni {
  TERN_TARGET_AVXVNNI static void run(const QuantActs& a, const WeightMatrix& w, float* y, const float* bias,
                                      int64_t i0, int64_t r) {
    TERN_INT4_ROW_BODY(_mm256_dpbusd_avx_epi32)
  }
};

template <int M>
struct Int4Avx512Vnni {
  TERN_TARGET_AVX512VNNI static void run(const QuantActs& a, const WeightMatrix& w, float* y, const float* bias,
                                         int64_t i0, int64_t r) {
    TERN_INT4_ROW_BODY(_mm256_dpbusd_epi32)
  }
};

#undef TERN_INT4_ROW_BODY

// m = 1 on AVX-512: 64 codes per zmm instead of 32 per ymm, R rows per pass sharing each x load, taken
// from R far-apart parts of the thread's range (R sequential read streams, each prefetched ahead: one
// stream of adjacent rows read only ~13 GB/s per core from DRAM). Why: the ymm body above spends ~8 instructions per 32 codes unpacking and ran at ~40% of the
// read bandwidth (bench_matmul_quant), arithmetic-bound. One 32-byte load holds two packed blocks A, B
// (byte b: column b low nibble, b + 16 high); [q, q >> 4] & 15 puts their codes in the order
// [A 0-15, B 32-47, A 16-31, B 48-63], so x's 8-byte words are permuted once per step to match.
template <int R>
TERN_TARGET_AVX512VNNI void int4_rows_m1(const QuantActs& a, const WeightMatrix& w, float* y, const float* bias,
                                         int64_t i, int64_t r0, int64_t stride) {
  const int64_t k = w.cols, gs = w.group, ng = k / gs;
  const uint8_t* row[R];
  for (int r = 0; r < R; ++r) row[r] = static_cast<const uint8_t*>(w.data) + (r0 + r * stride) * (k / 2);
  const __m512i perm = _mm512_setr_epi64(0, 1, 4, 5, 2, 3, 6, 7), m4 = _mm512_set1_epi8(0x0F);
  __m512 acc[R];
  float zterm[R];
  for (int r = 0; r < R; ++r) acc[r] = _mm512_setzero_ps(), zterm[r] = 0.f;
  for (int64_t g = 0; g < ng; ++g) {
    __m512i gi[R];
    for (int r = 0; r < R; ++r) gi[r] = _mm512_setzero_si512();
    for (int64_t j = g * gs; j < (g + 1) * gs; j += 64) {
      const __m512i xv = _mm512_permutexvar_epi64(perm, _mm512_loadu_si512(a.xq + i * k + j));
#pragma GCC unroll 4
      for (int r = 0; r < R; ++r) {
        _mm_prefetch(reinterpret_cast<const char*>(row[r] + j / 2 + 512), _MM_HINT_T0);
        const __m256i q = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(row[r] + j / 2));
        const __m512i codes =
            _mm512_and_si512(_mm512_inserti64x4(_mm512_castsi256_si512(q), _mm256_srli_epi16(q, 4), 1), m4);
        gi[r] = _mm512_dpbusd_epi32(gi[r], codes, xv);
      }
    }
    const int64_t xg = i * ng + g;
    for (int r = 0; r < R; ++r) {
      const int64_t rr = r0 + r * stride;
      const float sc = w.scales[rr * ng + g], z = w.zeros ? w.zeros[rr * ng + g] : 8.0f;
      acc[r] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(gi[r]), _mm512_set1_ps(sc * a.xd[xg]), acc[r]);
      zterm[r] += sc * z * a.xs[xg];
    }
  }
  for (int r = 0; r < R; ++r) {
    const int64_t row_i = r0 + r * stride;
    y[i * w.rows + row_i] = _mm512_reduce_add_ps(acc[r]) - zterm[r] + (bias ? bias[row_i] : 0.f);
  }
}

}  // namespace

TERN_TARGET_AVXVNNI void quant_w8a8_avxvnni(const QuantActs& a, const WeightMatrix& w, float* y, const float* bias,
                                            int64_t m0, int64_t m1, int64_t n0, int64_t n1) {
  quant_drive<W8A8AvxVnni>(a, w, y, bias, m0, m1, n0, n1);
}

TERN_TARGET_AVXVNNI void quant_int4_avxvnni(const QuantActs& a, const WeightMatrix& w, float* y, const float* bias,
                                            int64_t m0, int64_t m1, int64_t n0, int64_t n1) {
  quant_drive<Int4AvxVnni>(a, w, y, bias, m0, m1, n0, n1);
}

TERN_TARGET_AVX512VNNI void quant_w8a8_avx512vnni(const QuantActs& a, const WeightMatrix& w, float* y,
                                                  const float* bias, int64_t m0, int64_t m1, int64_t n0, int64_t n1) {
  quant_drive<W8A8Avx512Vnni>(a, w, y, bias, m0, m1, n0, n1);
}

TERN_TARGET_AVX512VNNI void quant_int4_avx512vnni(const QuantActs& a, const WeightMatrix& w, float* y,
                                                  const float* bias, int64_t m0, int64_t m1, int64_t n0, int64_t n1) {
  if (m1 - m0 == 1 && w.group % 64 == 0) {
    const int64_t part = (n1 - n0) / 4;
    for (int64_t b = 0; b < part; ++b) int4_rows_m1<4>(a, w, y, bias, m0, n0 + b, part);
    for (int64_t r = n0 + 4 * part; r < n1; ++r) int4_rows_m1<1>(a, w, y, bias, m0, r, 0);
    return;
  }
  quant_drive<Int4Avx512Vnni>(a, w, y, bias, m0, m1, n0, n1);
}

}  // namespace tern::cpu
