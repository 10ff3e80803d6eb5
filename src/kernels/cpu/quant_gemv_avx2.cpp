// AVX2 GEMV for quantized weights (decode, m = 1..8 rows of x; layouts in quant_kernels.h).
// Memory-bound: every weight byte is read once for all m rows of x. As in the dense GEMV
// (matmul_gemv_avx2.cpp), R weight rows taken from R far-apart parts of the thread's row range are
// processed together: R sequential read streams (one stream per thread reached ~60% of the read
// bandwidth; several streams reach the multi-stream ceiling), each software-prefetched a few lines
// ahead, and M·R independent accumulation chains. x (≤ 8 rows, ≤ 64 KiB f32) stays in L1/L2.
//   W8A16: vpmovsxbd straight from memory + vcvtdq2ps, FMA with f32 x.
//   W8A8:  vpmaddubsw(|w|, sign(x, w)) + vpmaddwd, as in quant_avx2.cpp.
//   Int4:  vpmaddubsw(q, xq) products summed in int16 lanes for up to 8 blocks of 32 columns
//          (each lane ≤ 2·15·127 = 3810, so 8 of them stay < 2^15) and widened once per 256 columns.
//          With x in pair order, m = 1 goes to quant_gemv_int4_avx2.cpp and m = 2..8 at group 128 to
//          quant_gemv_int4_batch_avx2.cpp (scales applied to 4 (x row, weight row) pairs at once);
//          this kernel keeps group 32 and the other small batches.
#include "kernels/cpu/quant_avx2_util.h"

namespace tern::cpu {

namespace {

// Bytes ahead of the current position that each row stream is prefetched (320 measured at least as
// well as 192 / 768 on m = 1, single thread; with 4 streams a longer distance overfills the L1 miss
// buffers and the prefetches themselves stall); past the end of a row
// this is the start of the next row of the same stream (rows of a stream are consecutive).
constexpr int64_t kPrefetchBytes = 320;

// Rows of a block (= read streams) for M rows of x, keeping accumulators + weights in 16 ymm
// (int4 holds two sets of accumulators: int16 partial sums and f32 totals).
template <template <int, int> class K, int M>
constexpr int rows_for() {
  if constexpr (K<1, 1>::kInt16Partials) return M == 1 ? 4 : M <= 3 ? 2 : 1;
  return M <= 2 ? 4 : M <= 4 ? 2 : 1;
}

template <int M, int R>
struct W8A16 {
  static constexpr bool kInt16Partials = false;
  // y[i0:i0+M, r0 + s·stride] for s < R.
  TERN_TARGET_AVX2 static void run(const QuantActs& a, const WeightMatrix& w, float* y, const float* bias, int64_t i0,
                                   int64_t r0, int64_t stride) {
    const int64_t k = w.cols;
    constexpr int U = M == 1 ? 2 : 1;  // two chains per row at m = 1 to cover the FMA latency
    const int8_t* q[R];
    for (int r = 0; r < R; ++r) {
      q[r] = static_cast<const int8_t*>(w.data) + (r0 + r * stride) * k;
      _mm_prefetch(reinterpret_cast<const char*>(w.scales + std::min(r0 + r * stride + 16, w.rows - 1)), _MM_HINT_T0);
    }
    __m256 acc[U][M][R];
#pragma GCC unroll 8
    for (int u = 0; u < U; ++u)
#pragma GCC unroll 8
      for (int i = 0; i < M; ++i)
#pragma GCC unroll 8
        for (int r = 0; r < R; ++r) acc[u][i][r] = _mm256_setzero_ps();
    int64_t j = 0;
    for (; j + 64 <= k; j += 64) {  // one 64-byte line of every row per step
#pragma GCC unroll 8
      for (int r = 0; r < R; ++r) _mm_prefetch(reinterpret_cast<const char*>(q[r] + j + kPrefetchBytes), _MM_HINT_T0);
#pragma GCC unroll 8
      for (int s = 0; s < 8; ++s) {
        const int u = s % U;
        __m256 wv[R];
#pragma GCC unroll 8
        for (int r = 0; r < R; ++r)
          wv[r] = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(q[r] + j + 8 * s))));
#pragma GCC unroll 8
        for (int i = 0; i < M; ++i) {
          const __m256 xv = _mm256_loadu_ps(a.x + (i0 + i) * k + j + 8 * s);
#pragma GCC unroll 8
          for (int r = 0; r < R; ++r) acc[u][i][r] = _mm256_fmadd_ps(xv, wv[r], acc[u][i][r]);
        }
      }
    }
    for (; j + 8 <= k; j += 8) {
#pragma GCC unroll 8
      for (int r = 0; r < R; ++r) {
        const __m256 wv = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(q[r] + j))));
#pragma GCC unroll 8
        for (int i = 0; i < M; ++i) acc[0][i][r] = _mm256_fmadd_ps(_mm256_loadu_ps(a.x + (i0 + i) * k + j), wv, acc[0][i][r]);
      }
    }
    for (int i = 0; i < M; ++i)
      for (int r = 0; r < R; ++r) {
        __m256 t = acc[0][i][r];
        for (int u = 1; u < U; ++u) t = _mm256_add_ps(t, acc[u][i][r]);
        float s = avx2_hsum(t);
        for (int64_t c = j; c < k; ++c) s += a.x[(i0 + i) * k + c] * float(q[r][c]);
        const int64_t row = r0 + r * stride;
        y[(i0 + i) * w.rows + row] = s * w.scales[row] + (bias ? bias[row] : 0.f);
      }
  }
};

template <int M, int R>
struct W8A8 {
  static constexpr bool kInt16Partials = false;
  TERN_TARGET_AVX2 static void run(const QuantActs& a, const WeightMatrix& w, float* y, const float* bias, int64_t i0,
                                   int64_t r0, int64_t stride) {
    const int64_t k = w.cols;
    const __m256i ones = _mm256_set1_epi16(1);
    const int8_t* q[R];
    for (int r = 0; r < R; ++r) {
      q[r] = static_cast<const int8_t*>(w.data) + (r0 + r * stride) * k;
      _mm_prefetch(reinterpret_cast<const char*>(w.scales + std::min(r0 + r * stride + 16, w.rows - 1)), _MM_HINT_T0);
    }
    __m256i acc[M][R];
#pragma GCC unroll 8
    for (int i = 0; i < M; ++i)
#pragma GCC unroll 8
      for (int r = 0; r < R; ++r) acc[i][r] = _mm256_setzero_si256();
    int64_t j = 0;
    for (; j + 32 <= k; j += 32) {
      if ((j & 63) == 0) {
#pragma GCC unroll 8
        for (int r = 0; r < R; ++r) _mm_prefetch(reinterpret_cast<const char*>(q[r] + j + kPrefetchBytes), _MM_HINT_T0);
      }
      __m256i wv[R], aw[R];
#pragma GCC unroll 8
      for (int r = 0; r < R; ++r) {
        wv[r] = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(q[r] + j));
        aw[r] = _mm256_sign_epi8(wv[r], wv[r]);  // |w|; -128 stays 0x80 = 128 unsigned
      }
#pragma GCC unroll 8
      for (int i = 0; i < M; ++i) {
        const __m256i xv = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(a.xq + (i0 + i) * k + j));
#pragma GCC unroll 8
        for (int r = 0; r < R; ++r) {
          const __m256i p = _mm256_maddubs_epi16(aw[r], _mm256_sign_epi8(xv, wv[r]));
          acc[i][r] = _mm256_add_epi32(acc[i][r], _mm256_madd_epi16(p, ones));
        }
      }
    }
    for (int i = 0; i < M; ++i)
      for (int r = 0; r < R; ++r) {
        int32_t s = avx2_hsum_i32(acc[i][r]);
        for (int64_t c = j; c < k; ++c) s += int32_t(a.xq[(i0 + i) * k + c]) * int32_t(q[r][c]);
        const int64_t row = r0 + r * stride;
        y[(i0 + i) * w.rows + row] = float(s) * (w.scales[row] * a.xd[i0 + i]) + (bias ? bias[row] : 0.f);
      }
  }
};

template <int M, int R>
struct Int4 {
  static constexpr bool kInt16Partials = true;
  TERN_TARGET_AVX2 static void run(const QuantActs& a, const WeightMatrix& w, float* y, const float* bias, int64_t i0,
                                   int64_t r0, int64_t stride) {
    const int64_t k = w.cols, gs = w.group, ng = k / gs;
    const __m256i ones = _mm256_set1_epi16(1);
    const uint8_t* q[R];
    int64_t row[R];
    for (int r = 0; r < R; ++r) row[r] = r0 + r * stride, q[r] = static_cast<const uint8_t*>(w.data) + row[r] * (k / 2);
    // The scales (and zero points) of a row are their own small stream, read once per group: without
    // this, the first group of every row waits for a DRAM miss (~a row's streaming time at k = 2048).
    for (int r = 0; r < R; ++r) {
      const int64_t ahead = std::min(row[r] + 2, w.rows - 1) * ng;
      for (int64_t g = 0; g < ng; g += 16) {
        _mm_prefetch(reinterpret_cast<const char*>(w.scales + ahead + g), _MM_HINT_T0);
        if (w.zeros) _mm_prefetch(reinterpret_cast<const char*>(w.zeros + ahead + g), _MM_HINT_T0);
      }
    }
    __m256 acc[M][R];
    float zterm[M][R];
#pragma GCC unroll 8
    for (int i = 0; i < M; ++i)
#pragma GCC unroll 8
      for (int r = 0; r < R; ++r) acc[i][r] = _mm256_setzero_ps(), zterm[i][r] = 0.f;
    for (int64_t g = 0; g < ng; ++g) {
      float sxd[M][R];  // group scale of the weight row times that of x
#pragma GCC unroll 8
      for (int r = 0; r < R; ++r) {
        const float s = w.scales[row[r] * ng + g], z = w.zeros ? w.zeros[row[r] * ng + g] : 8.0f;
#pragma GCC unroll 8
        for (int i = 0; i < M; ++i) {
          const int64_t xg = (i0 + i) * ng + g;
          sxd[i][r] = s * a.xd[xg];
          zterm[i][r] += s * z * a.xs[xg];
        }
      }
      // Exact int16 sums of at most 8 blocks, widened once per 256 columns (once per group up to 256).
      for (int64_t j0 = g * gs; j0 < (g + 1) * gs; j0 += 256) {
        const int64_t j1 = std::min((g + 1) * gs, j0 + 256);
        __m256i p16[M][R];
#pragma GCC unroll 8
        for (int i = 0; i < M; ++i)
#pragma GCC unroll 8
          for (int r = 0; r < R; ++r) p16[i][r] = _mm256_setzero_si256();
        if (a.xq_pairs) {
          const __m256i lo = _mm256_set1_epi8(0x0f);
          for (int64_t j = j0; j < j1; j += 64) {
            if ((j & 127) == 0) {  // 128 columns = one 64-byte line of every row
#pragma GCC unroll 8
              for (int r = 0; r < R; ++r) _mm_prefetch(reinterpret_cast<const char*>(q[r] + j / 2 + kPrefetchBytes), _MM_HINT_T0);
            }
            __m256i ql[R], qh[R];
#pragma GCC unroll 8
            for (int r = 0; r < R; ++r) {
              const __m256i v = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(q[r] + j / 2));
              ql[r] = _mm256_and_si256(v, lo);
              qh[r] = _mm256_and_si256(_mm256_srli_epi16(v, 4), lo);
            }
#pragma GCC unroll 8
            for (int i = 0; i < M; ++i) {
              const int8_t* xp = a.xq_pairs + (i0 + i) * k + j;
              const __m256i x0 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(xp));
              const __m256i x1 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(xp + 32));
#pragma GCC unroll 8
              for (int r = 0; r < R; ++r)
                p16[i][r] = _mm256_add_epi16(p16[i][r], _mm256_add_epi16(_mm256_maddubs_epi16(ql[r], x0),
                                                                         _mm256_maddubs_epi16(qh[r], x1)));
            }
          }
        } else {
          for (int64_t j = j0; j < j1; j += 32) {
            if ((j & 127) == 0) {  // 128 columns = one 64-byte line of every row
#pragma GCC unroll 8
              for (int r = 0; r < R; ++r) _mm_prefetch(reinterpret_cast<const char*>(q[r] + j / 2 + kPrefetchBytes), _MM_HINT_T0);
            }
            __m256i qv[R];
#pragma GCC unroll 8
            for (int r = 0; r < R; ++r) qv[r] = avx2_unpack_int4(q[r] + j / 2);
#pragma GCC unroll 8
            for (int i = 0; i < M; ++i) {
              const __m256i xv = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(a.xq + (i0 + i) * k + j));
#pragma GCC unroll 8
              for (int r = 0; r < R; ++r) p16[i][r] = _mm256_add_epi16(p16[i][r], _mm256_maddubs_epi16(qv[r], xv));
            }
          }
        }
#pragma GCC unroll 8
        for (int i = 0; i < M; ++i)
#pragma GCC unroll 8
          for (int r = 0; r < R; ++r)
            acc[i][r] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(_mm256_madd_epi16(p16[i][r], ones)),
                                        _mm256_set1_ps(sxd[i][r]), acc[i][r]);
      }
    }
    for (int i = 0; i < M; ++i)
      for (int r = 0; r < R; ++r)
        y[(i0 + i) * w.rows + row[r]] = avx2_hsum(acc[i][r]) - zterm[i][r] + (bias ? bias[row[r]] : 0.f);
  }
};

// Rows [n0, n1) for rows i0..i0+M of x: blocks of R rows from R equal far-apart parts, then the rest.
template <template <int, int> class K, int M>
TERN_TARGET_AVX2 void gemv_rows(const QuantActs& a, const WeightMatrix& w, float* y, const float* bias, int64_t i0,
                                int64_t n0, int64_t n1) {
  constexpr int R = rows_for<K, M>();
  const int64_t part = (n1 - n0) / R;
  for (int64_t b = 0; b < part; ++b) K<M, R>::run(a, w, y, bias, i0, n0 + b, part);
  for (int64_t r = n0 + R * part; r < n1; ++r) K<M, 1>::run(a, w, y, bias, i0, r, 0);
}

template <template <int, int> class K>
TERN_TARGET_AVX2 void gemv_drive(const QuantActs& a, const WeightMatrix& w, float* y, const float* bias, int64_t m0,
                                 int64_t m1, int64_t n0, int64_t n1) {
  for (int64_t i = m0; i < m1; i += 8) {
    switch (std::min<int64_t>(8, m1 - i)) {
      case 8: gemv_rows<K, 8>(a, w, y, bias, i, n0, n1); break;
      case 7: gemv_rows<K, 7>(a, w, y, bias, i, n0, n1); break;
      case 6: gemv_rows<K, 6>(a, w, y, bias, i, n0, n1); break;
      case 5: gemv_rows<K, 5>(a, w, y, bias, i, n0, n1); break;
      case 4: gemv_rows<K, 4>(a, w, y, bias, i, n0, n1); break;
      case 3: gemv_rows<K, 3>(a, w, y, bias, i, n0, n1); break;
      case 2: gemv_rows<K, 2>(a, w, y, bias, i, n0, n1); break;
      default: gemv_rows<K, 1>(a, w, y, bias, i, n0, n1); break;
    }
  }
}

}  // namespace

void quant_gemv_w8a16_avx2(const QuantActs& a, const WeightMatrix& w, float* y, const float* bias, int64_t m0,
                           int64_t m1, int64_t n0, int64_t n1) {
  gemv_drive<W8A16>(a, w, y, bias, m0, m1, n0, n1);
}

void quant_gemv_w8a8_avx2(const QuantActs& a, const WeightMatrix& w, float* y, const float* bias, int64_t m0,
                          int64_t m1, int64_t n0, int64_t n1) {
  gemv_drive<W8A8>(a, w, y, bias, m0, m1, n0, n1);
}

void quant_gemv_int4_avx2(const QuantActs& a, const WeightMatrix& w, float* y, const float* bias, int64_t m0,
                          int64_t m1, int64_t n0, int64_t n1) {
  if (m1 - m0 == 1 && a.xq_pairs) return quant_gemv_int4_m1_avx2(a, w, y, bias, m0, n0, n1);
  if (a.xq_pairs && w.group == 128) return quant_gemv_int4_batch_avx2(a, w, y, bias, m0, m1, n0, n1);
  gemv_drive<Int4>(a, w, y, bias, m0, m1, n0, n1);
}

}  // namespace tern::cpu
