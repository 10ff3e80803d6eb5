// AVX2 int4 GEMV for a small decode batch (m = 2..8 rows of x), group 128, x in pair order
// (QuantActs::xq_pairs). Every weight byte is read once for all M rows of x; the cost is integer
// work (2 vpmaddubsw + 2 adds per 64 codes and x row), so the kernel keeps the rest small:
//   per 64 columns: the R weight rows' codes are unpacked once (1 load, 1 shift, 2 masks) and kept
//     in registers while each row of x passes (2 loads), int16 partial sums per (x row, weight row);
//   per group: vpmaddwd to int32, then the (x row, weight row) pairs four at a time through one
//     transpose-add, one vcvtdq2ps and two FMAs of s · (xd · dot − z · xs), as the m = 1 kernel does,
//     instead of a broadcast + FMA per pair and scalar scale arithmetic.
// Registers: 2R unpacked codes + M·R int16 sums + 2 x + mask ≤ 15 ymm, hence R = 2 up to M = 4, else 1.
#include "kernels/cpu/quant_avx2_util.h"

namespace tern::cpu {

namespace {

constexpr int64_t kPrefetchBytes = 320;  // as quant_gemv_avx2.cpp

// y[i0 + i, r0 + r·stride] for i < M, r < R. Pair c = i·R + r.
template <int M, int R>
TERN_TARGET_AVX2 void rows_g128(const QuantActs& a, const WeightMatrix& w, float* y, const float* bias, int64_t i0,
                                int64_t r0, int64_t stride) {
  constexpr int C = M * R, B = (C + 3) / 4;  // pairs, blocks of 4 pairs
  const int64_t k = w.cols, ng = k / 128;
  const __m256i lo = _mm256_set1_epi8(0x0f), ones = _mm256_set1_epi16(1);
  const uint8_t* q[R];
  const float* sc[R];
  const float* zp[R];
  for (int r = 0; r < R; ++r) {
    const int64_t row = r0 + r * stride;
    q[r] = static_cast<const uint8_t*>(w.data) + row * (k / 2);
    sc[r] = w.scales + row * ng;
    zp[r] = w.zeros ? w.zeros + row * ng : nullptr;
    const int64_t ahead = std::min(row + 2, w.rows - 1) * ng;  // the scale stream, two rows ahead
    for (int64_t g = 0; g < ng; g += 16) {
      _mm_prefetch(reinterpret_cast<const char*>(w.scales + ahead + g), _MM_HINT_T0);
      if (w.zeros) _mm_prefetch(reinterpret_cast<const char*>(w.zeros + ahead + g), _MM_HINT_T0);
    }
  }
  const int8_t* x = a.xq_pairs + i0 * k;
  __m128 acc[B];
#pragma GCC unroll 2
  for (int b = 0; b < B; ++b) acc[b] = _mm_setzero_ps();
  for (int64_t g = 0; g < ng; ++g) {
    __m256i p[C];
#pragma GCC unroll 8
    for (int c = 0; c < C; ++c) p[c] = _mm256_setzero_si256();
#pragma GCC unroll 2
    for (int h = 0; h < 2; ++h) {  // two 64-column halves of the group: 32 bytes of every row
      const int64_t j = g * 128 + h * 64;
      __m256i ql[R], qh[R];
#pragma GCC unroll 2
      for (int r = 0; r < R; ++r) {
        if (h == 0) _mm_prefetch(reinterpret_cast<const char*>(q[r] + j / 2 + kPrefetchBytes), _MM_HINT_T0);
        const __m256i v = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(q[r] + j / 2));
        ql[r] = _mm256_and_si256(v, lo);
        qh[r] = _mm256_and_si256(_mm256_srli_epi16(v, 4), lo);
      }
#pragma GCC unroll 8
      for (int i = 0; i < M; ++i) {
        const __m256i x0 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x + i * k + j));
        const __m256i x1 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x + i * k + j + 32));
#pragma GCC unroll 2
        for (int r = 0; r < R; ++r)  // int16 lanes: ≤ 4 products of 15·127 each: < 2^15
          p[i * R + r] = _mm256_add_epi16(p[i * R + r], _mm256_add_epi16(_mm256_maddubs_epi16(ql[r], x0),
                                                                         _mm256_maddubs_epi16(qh[r], x1)));
      }
    }
#pragma GCC unroll 2
    for (int b = 0; b < B; ++b) {
      __m256i s[4];
      float sv[4], zv[4], xdv[4], xsv[4];
#pragma GCC unroll 4
      for (int l = 0; l < 4; ++l) {
        const int c = 4 * b + l < C ? 4 * b + l : C - 1;  // a padding lane repeats the last pair
        const int i = c / R, r = c % R;
        s[l] = 4 * b + l < C ? _mm256_madd_epi16(p[c], ones) : _mm256_setzero_si256();
        sv[l] = sc[r][g], zv[l] = zp[r] ? zp[r][g] : 8.0f;
        xdv[l] = a.xd[(i0 + i) * ng + g], xsv[l] = a.xs[(i0 + i) * ng + g];
      }
      const __m128 dot = _mm_cvtepi32_ps(avx2_hsum4_i32(s[0], s[1], s[2], s[3]));
      const __m128 t = _mm_fmsub_ps(dot, _mm_setr_ps(xdv[0], xdv[1], xdv[2], xdv[3]),
                                    _mm_mul_ps(_mm_setr_ps(zv[0], zv[1], zv[2], zv[3]),
                                               _mm_setr_ps(xsv[0], xsv[1], xsv[2], xsv[3])));
      acc[b] = _mm_fmadd_ps(_mm_setr_ps(sv[0], sv[1], sv[2], sv[3]), t, acc[b]);
    }
  }
  float out[4 * B];
  for (int b = 0; b < B; ++b) _mm_storeu_ps(out + 4 * b, acc[b]);
  for (int c = 0; c < C; ++c) {
    const int64_t i = i0 + c / R, row = r0 + (c % R) * stride;
    y[i * w.rows + row] = out[c] + (bias ? bias[row] : 0.f);
  }
}

// Rows [n0, n1) for x rows i0..i0+M: blocks of R far-apart rows (R read streams), then the rest.
template <int M>
TERN_TARGET_AVX2 void batch_rows(const QuantActs& a, const WeightMatrix& w, float* y, const float* bias, int64_t i0,
                                 int64_t n0, int64_t n1) {
  constexpr int R = M <= 4 ? 2 : 1;
  const int64_t part = (n1 - n0) / R;
  for (int64_t b = 0; b < part; ++b) rows_g128<M, R>(a, w, y, bias, i0, n0 + b, part);
  for (int64_t r = n0 + R * part; r < n1; ++r) rows_g128<M, 1>(a, w, y, bias, i0, r, 0);
}

}  // namespace

void quant_gemv_int4_batch_avx2(const QuantActs& a, const WeightMatrix& w, float* y, const float* bias, int64_t m0,
                                int64_t m1, int64_t n0, int64_t n1) {
  switch (m1 - m0) {
    case 8: return batch_rows<8>(a, w, y, bias, m0, n0, n1);
    case 7: return batch_rows<7>(a, w, y, bias, m0, n0, n1);
    case 6: return batch_rows<6>(a, w, y, bias, m0, n0, n1);
    case 5: return batch_rows<5>(a, w, y, bias, m0, n0, n1);
    case 4: return batch_rows<4>(a, w, y, bias, m0, n0, n1);
    case 3: return batch_rows<3>(a, w, y, bias, m0, n0, n1);
    case 2: return batch_rows<2>(a, w, y, bias, m0, n0, n1);
    default: return batch_rows<1>(a, w, y, bias, m0, n0, n1);
  }
}

}  // namespace tern::cpu
