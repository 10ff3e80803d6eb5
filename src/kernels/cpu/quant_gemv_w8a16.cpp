// W8A16 decode GEMV on int16 activations (m = 1..kX16MaxRows rows of x; contract in quant_kernels.h).
// Why not f32: the f32 kernel (quant_gemv_avx2.cpp) spends three vector instructions per 8 weights
// (vpmovsxbd, vcvtdq2ps, FMA), which on a CPU whose 256-bit units are split in two 128-bit halves
// (Zen 1) left tern's int8 decode slower than its own GGUF Q8_0 path (issue 20). With x as int16
// codes per block of kX16Block columns, 16 weights take vpmovsxbw + vpmaddwd + vpaddd (AVX2), or
// vpmovsxbw + vpdpwssd (AVX-VNNI; 32 weights per zmm pair on AVX-512 VNNI); the int32 block sums are
// exact, converted and scaled once per block and row. The int16 rounding of x (<= 1/65534 of the
// block's max) is far below the bf16 rounding the activations of a bf16 checkpoint already carry.
// Rows: as the other GEMVs, R weight rows from R far-apart parts of the thread's range (R sequential
// read streams, each prefetched ahead) share every x load; x16 (<= 8 rows, <= 128 KiB) stays in L2.
// GCC 12's AVX-512 intrinsics start from an "undefined" vector that -Wmaybe-uninitialized reports
// once inlined (see matmul_avx512_util.h); the code is fine.
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"

#include "kernels/cpu/quant_avx2_util.h"


namespace tern::cpu {

namespace {

// Bytes ahead of the current column that each row stream is prefetched (as quant_gemv_avx2.cpp).
constexpr int64_t kPrefetchBytes = 320;

// The scalar products of the columns past the last multiple of 16 (the end of the last block).
inline int32_t tail_dot(const int16_t* x, const int8_t* q, int64_t j, int64_t k) {
  int32_t s = 0;
  for (; j < k; ++j) s += int32_t(x[j]) * int32_t(q[j]);
  return s;
}

// y[i0:i0+M, r0 + s·stride] for s < R, on 256-bit vectors; DP(acc, w16, x16) adds the pairwise
// products of 16 int16 lanes into 8 int32 lanes. A macro, not a template, because each copy must be
// compiled under its own target attribute.
#define TERN_X16_YMM_KERNEL(NAME, TARGET, DP)                                                                   \
  template <int M, int R>                                                                                       \
  struct NAME {                                                                                                 \
    TARGET static void run(const QuantActs& a, const WeightMatrix& w, float* y, const float* bias, int64_t i0,   \
                           int64_t r0, int64_t stride) {                                                         \
      const int64_t k = w.cols, nb = (k + kX16Block - 1) / kX16Block;                                           \
      const int8_t* q[R];                                                                                       \
      for (int r = 0; r < R; ++r) {                                                                             \
        q[r] = static_cast<const int8_t*>(w.data) + (r0 + r * stride) * k;                                      \
        _mm_prefetch(reinterpret_cast<const char*>(w.scales + std::min(r0 + r * stride + 16, w.rows - 1)),      \
                     _MM_HINT_T0);                                                                              \
      }                                                                                                         \
      __m256 facc[M][R];                                                                                        \
      int32_t tail[M][R];                                                                                       \
      _Pragma("GCC unroll 8") for (int i = 0; i < M; ++i) _Pragma("GCC unroll 8") for (int r = 0; r < R; ++r) { \
        facc[i][r] = _mm256_setzero_ps();                                                                       \
        tail[i][r] = 0;                                                                                         \
      }                                                                                                         \
      for (int64_t b = 0; b < nb; ++b) {                                                                        \
        const int64_t j1 = std::min(k, (b + 1) * kX16Block);                                                    \
        __m256i acc[M][R];                                                                                      \
        _Pragma("GCC unroll 8") for (int i = 0; i < M; ++i) _Pragma("GCC unroll 8") for (int r = 0; r < R; ++r) \
            acc[i][r] = _mm256_setzero_si256();                                                                 \
        int64_t j = b * kX16Block;                                                                              \
        for (; j + 16 <= j1; j += 16) {                                                                         \
          if ((j & 63) == 0) {                                                                                  \
            _Pragma("GCC unroll 8") for (int r = 0; r < R; ++r)                                                 \
                _mm_prefetch(reinterpret_cast<const char*>(q[r] + j + kPrefetchBytes), _MM_HINT_T0);            \
          }                                                                                                     \
          __m256i wv[R];                                                                                        \
          _Pragma("GCC unroll 8") for (int r = 0; r < R; ++r) wv[r] =                                           \
              _mm256_cvtepi8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(q[r] + j)));                \
          _Pragma("GCC unroll 8") for (int i = 0; i < M; ++i) {                                                 \
            const __m256i xv = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(a.x16 + (i0 + i) * k + j));  \
            _Pragma("GCC unroll 8") for (int r = 0; r < R; ++r) acc[i][r] = DP(acc[i][r], wv[r], xv);           \
          }                                                                                                     \
        }                                                                                                       \
        if (j < j1) {                                                                                           \
          _Pragma("GCC unroll 8") for (int i = 0; i < M; ++i) _Pragma("GCC unroll 8") for (int r = 0; r < R;    \
                                                                                         ++r) tail[i][r] =      \
              tail_dot(a.x16 + (i0 + i) * k, q[r], j, j1);                                                      \
        }                                                                                                       \
        _Pragma("GCC unroll 8") for (int i = 0; i < M; ++i) {                                                   \
          const __m256 xd = _mm256_set1_ps(a.xd16[(i0 + i) * nb + b]);                                         \
          _Pragma("GCC unroll 8") for (int r = 0; r < R; ++r) facc[i][r] =                                      \
              _mm256_fmadd_ps(_mm256_cvtepi32_ps(acc[i][r]), xd, facc[i][r]);                                   \
        }                                                                                                       \
      }                                                                                                         \
      for (int i = 0; i < M; ++i)                                                                               \
        for (int r = 0; r < R; ++r) {                                                                           \
          const int64_t row = r0 + r * stride;                                                                  \
          const float s = avx2_hsum(facc[i][r]) + a.xd16[(i0 + i) * nb + nb - 1] * float(tail[i][r]);          \
          y[(i0 + i) * w.rows + row] = s * w.scales[row] + (bias ? bias[row] : 0.f);                            \
        }                                                                                                       \
    }                                                                                                           \
  };

TERN_TARGET_AVX2 inline __m256i dp_avx2(__m256i acc, __m256i w, __m256i x) {
  return _mm256_add_epi32(acc, _mm256_madd_epi16(w, x));
}
TERN_TARGET_AVXVNNI inline __m256i dp_avxvnni(__m256i acc, __m256i w, __m256i x) {
  return _mm256_dpwssd_avx_epi32(acc, w, x);
}

TERN_X16_YMM_KERNEL(X16Avx2, TERN_TARGET_AVX2, dp_avx2)
TERN_X16_YMM_KERNEL(X16AvxVnni, TERN_TARGET_AVXVNNI, dp_avxvnni)
#undef TERN_X16_YMM_KERNEL

// The same on 512-bit vectors: 32 columns per vpmovsxbw + vpdpwssd; a 16-column step on ymm and the
// scalar tail finish a block whose length is not a multiple of 32.
template <int M, int R>
struct X16Avx512Vnni {
  TERN_TARGET_AVX512VNNI static void run(const QuantActs& a, const WeightMatrix& w, float* y, const float* bias,
                                         int64_t i0, int64_t r0, int64_t stride) {
    const int64_t k = w.cols, nb = (k + kX16Block - 1) / kX16Block;
    const int8_t* q[R];
    for (int r = 0; r < R; ++r) {
      q[r] = static_cast<const int8_t*>(w.data) + (r0 + r * stride) * k;
      _mm_prefetch(reinterpret_cast<const char*>(w.scales + std::min(r0 + r * stride + 16, w.rows - 1)), _MM_HINT_T0);
    }
    __m512 facc[M][R];
    int32_t tail[M][R];
#pragma GCC unroll 8
    for (int i = 0; i < M; ++i)
#pragma GCC unroll 8
      for (int r = 0; r < R; ++r) facc[i][r] = _mm512_setzero_ps(), tail[i][r] = 0;
    for (int64_t b = 0; b < nb; ++b) {
      const int64_t j1 = std::min(k, (b + 1) * kX16Block);
      __m512i acc[M][R];
#pragma GCC unroll 8
      for (int i = 0; i < M; ++i)
#pragma GCC unroll 8
        for (int r = 0; r < R; ++r) acc[i][r] = _mm512_setzero_si512();
      int64_t j = b * kX16Block;
      for (; j + 32 <= j1; j += 32) {
        if ((j & 63) == 0) {
#pragma GCC unroll 8
          for (int r = 0; r < R; ++r) _mm_prefetch(reinterpret_cast<const char*>(q[r] + j + kPrefetchBytes), _MM_HINT_T0);
        }
        __m512i wv[R];
#pragma GCC unroll 8
        for (int r = 0; r < R; ++r) wv[r] = _mm512_cvtepi8_epi16(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(q[r] + j)));
#pragma GCC unroll 8
        for (int i = 0; i < M; ++i) {
          const __m512i xv = _mm512_loadu_si512(a.x16 + (i0 + i) * k + j);
#pragma GCC unroll 8
          for (int r = 0; r < R; ++r) acc[i][r] = _mm512_dpwssd_epi32(acc[i][r], wv[r], xv);
        }
      }
      if (j + 16 <= j1) {
#pragma GCC unroll 8
        for (int r = 0; r < R; ++r) {
          const __m256i wv = _mm256_cvtepi8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(q[r] + j)));
#pragma GCC unroll 8
          for (int i = 0; i < M; ++i) {
            const __m256i xv = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(a.x16 + (i0 + i) * k + j));
            acc[i][r] = _mm512_inserti64x4(acc[i][r], _mm256_dpwssd_epi32(_mm512_castsi512_si256(acc[i][r]), wv, xv), 0);
          }
        }
        j += 16;
      }
      if (j < j1) {
        for (int i = 0; i < M; ++i)
          for (int r = 0; r < R; ++r) tail[i][r] = tail_dot(a.x16 + (i0 + i) * k, q[r], j, j1);
      }
#pragma GCC unroll 8
      for (int i = 0; i < M; ++i) {
        const __m512 xd = _mm512_set1_ps(a.xd16[(i0 + i) * nb + b]);
#pragma GCC unroll 8
        for (int r = 0; r < R; ++r) facc[i][r] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(acc[i][r]), xd, facc[i][r]);
      }
    }
    for (int i = 0; i < M; ++i)
      for (int r = 0; r < R; ++r) {
        const int64_t row = r0 + r * stride;
        const float s = _mm512_reduce_add_ps(facc[i][r]) + a.xd16[(i0 + i) * nb + nb - 1] * float(tail[i][r]);
        y[(i0 + i) * w.rows + row] = s * w.scales[row] + (bias ? bias[row] : 0.f);
      }
  }
};

// Read streams per pass for M rows of x: accumulators (int32 per block, f32 across blocks) and R
// widened weight vectors fit 16 ymm with the f32 block totals spilled (touched once per block).
template <int M>
constexpr int ymm_rows() {
  return M <= 2 ? 4 : M <= 4 ? 2 : 1;
}
template <int M>
constexpr int zmm_rows() {
  return M <= 2 ? 4 : M <= 4 ? 2 : 1;
}

// Rows [n0, n1) for rows i0..i0+M of x: blocks of R rows from R equal far-apart parts, then the rest.
template <template <int, int> class K, int M, int R>
inline __attribute__((always_inline)) void rows_pass(const QuantActs& a, const WeightMatrix& w, float* y,
                                                     const float* bias, int64_t i0, int64_t n0, int64_t n1) {
  const int64_t part = (n1 - n0) / R;
  for (int64_t b = 0; b < part; ++b) K<M, R>::run(a, w, y, bias, i0, n0 + b, part);
  for (int64_t r = n0 + R * part; r < n1; ++r) K<M, 1>::run(a, w, y, bias, i0, r, 0);
}

template <template <int, int> class K, bool kZmm>
inline __attribute__((always_inline)) void drive(const QuantActs& a, const WeightMatrix& w, float* y,
                                                 const float* bias, int64_t m0, int64_t m1, int64_t n0, int64_t n1) {
#define TERN_X16_CASE(M) \
  case M: rows_pass<K, M, kZmm ? zmm_rows<M>() : ymm_rows<M>()>(a, w, y, bias, i, n0, n1); break;
  for (int64_t i = m0; i < m1; i += kX16MaxRows) {
    switch (std::min<int64_t>(kX16MaxRows, m1 - i)) {
      TERN_X16_CASE(8)
      TERN_X16_CASE(7)
      TERN_X16_CASE(6)
      TERN_X16_CASE(5)
      TERN_X16_CASE(4)
      TERN_X16_CASE(3)
      TERN_X16_CASE(2)
      default: rows_pass<K, 1, kZmm ? zmm_rows<1>() : ymm_rows<1>()>(a, w, y, bias, i, n0, n1); break;
    }
  }
#undef TERN_X16_CASE
}

}  // namespace

TERN_TARGET_AVX2 void quant_gemv_w8a16_x16_avx2(const QuantActs& a, const WeightMatrix& w, float* y, const float* bias,
                                                int64_t m0, int64_t m1, int64_t n0, int64_t n1) {
  drive<X16Avx2, false>(a, w, y, bias, m0, m1, n0, n1);
}

TERN_TARGET_AVXVNNI void quant_gemv_w8a16_x16_avxvnni(const QuantActs& a, const WeightMatrix& w, float* y,
                                                      const float* bias, int64_t m0, int64_t m1, int64_t n0,
                                                      int64_t n1) {
  drive<X16AvxVnni, false>(a, w, y, bias, m0, m1, n0, n1);
}

TERN_TARGET_AVX512VNNI void quant_gemv_w8a16_x16_avx512vnni(const QuantActs& a, const WeightMatrix& w, float* y,
                                                            const float* bias, int64_t m0, int64_t m1, int64_t n0,
                                                            int64_t n1) {
  drive<X16Avx512Vnni, true>(a, w, y, bias, m0, m1, n0, n1);
}

}  // namespace tern::cpu
