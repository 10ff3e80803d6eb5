// AVX2 kernels for quantized weights (layouts and contract in quant_kernels.h).
//   W8A16: int8 widened to f32 in registers (vpmovsxbd + vcvtdq2ps), FMA with f32 x.
//   W8A8:  vpmaddubsw needs an unsigned operand: |w| · sign(x, w) has the same product and, with
//          x in [-127, 127], pairs sum to at most 2·128·127 < 2^15 (no saturation); vpmaddwd widens.
//   Int4:  codes 0..15 are already unsigned: vpmaddubsw(q, xq) directly, one f32 FMA per group.
//   FP8:   e4m3 bits moved into f16 position (exponent bias 15 vs 7 = a factor 2^8 folded into the
//          row scale) and widened with vcvtph2ps.
#include <cstring>

#include "core/fp8.h"
#include "kernels/cpu/quant_avx2_util.h"

namespace tern::cpu {

namespace {

template <int M>
struct W8A16 {
  TERN_TARGET_AVX2 static void run(const QuantActs& a, const WeightMatrix& w, float* y, const float* bias, int64_t i0,
                                   int64_t r) {
    const int64_t k = w.cols;
    const int8_t* q = static_cast<const int8_t*>(w.data) + r * k;
    __m256 acc[M][2];
    for (int i = 0; i < M; ++i) acc[i][0] = acc[i][1] = _mm256_setzero_ps();
    int64_t j = 0;
    for (; j + 16 <= k; j += 16) {
      const __m128i b = _mm_loadu_si128(reinterpret_cast<const __m128i*>(q + j));
      const __m256 w0 = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(b));
      const __m256 w1 = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_unpackhi_epi64(b, b)));
      for (int i = 0; i < M; ++i) {
        const float* x = a.x + (i0 + i) * k + j;
        acc[i][0] = _mm256_fmadd_ps(_mm256_loadu_ps(x), w0, acc[i][0]);
        acc[i][1] = _mm256_fmadd_ps(_mm256_loadu_ps(x + 8), w1, acc[i][1]);
      }
    }
    for (int i = 0; i < M; ++i) {
      float s = avx2_hsum(_mm256_add_ps(acc[i][0], acc[i][1]));
      for (int64_t t = j; t < k; ++t) s += a.x[(i0 + i) * k + t] * float(q[t]);
      y[(i0 + i) * w.rows + r] = s * w.scales[r] + (bias ? bias[r] : 0.f);
    }
  }
};

template <int M>
struct W8A8 {
  TERN_TARGET_AVX2 static void run(const QuantActs& a, const WeightMatrix& w, float* y, const float* bias, int64_t i0,
                                   int64_t r) {
    const int64_t k = w.cols;
    const int8_t* q = static_cast<const int8_t*>(w.data) + r * k;
    const __m256i ones = _mm256_set1_epi16(1);
    __m256i acc[M];
    for (int i = 0; i < M; ++i) acc[i] = _mm256_setzero_si256();
    int64_t j = 0;
    for (; j + 32 <= k; j += 32) {
      const __m256i wv = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(q + j));
      const __m256i aw = _mm256_sign_epi8(wv, wv);  // |w|; -128 stays 0x80 = 128 unsigned
      for (int i = 0; i < M; ++i) {
        const __m256i xv = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(a.xq + (i0 + i) * k + j));
        const __m256i p = _mm256_maddubs_epi16(aw, _mm256_sign_epi8(xv, wv));
        acc[i] = _mm256_add_epi32(acc[i], _mm256_madd_epi16(p, ones));
      }
    }
    for (int i = 0; i < M; ++i) {
      int32_t s = avx2_hsum_i32(acc[i]);
      for (int64_t t = j; t < k; ++t) s += int32_t(a.xq[(i0 + i) * k + t]) * int32_t(q[t]);
      y[(i0 + i) * w.rows + r] = float(s) * (w.scales[r] * a.xd[i0 + i]) + (bias ? bias[r] : 0.f);
    }
  }
};

template <int M>
struct Int4 {
  TERN_TARGET_AVX2 static void run(const QuantActs& a, const WeightMatrix& w, float* y, const float* bias, int64_t i0,
                                   int64_t r) {
    const int64_t k = w.cols, gs = w.group, ng = k / gs;
    const uint8_t* row = static_cast<const uint8_t*>(w.data) + r * (k / 2);
    const __m256i ones = _mm256_set1_epi16(1);
    __m256 acc[M];
    float zterm[M];
    for (int i = 0; i < M; ++i) acc[i] = _mm256_setzero_ps(), zterm[i] = 0.f;
    for (int64_t g = 0; g < ng; ++g) {
      __m256i gi[M];
      for (int i = 0; i < M; ++i) gi[i] = _mm256_setzero_si256();
      for (int64_t j = g * gs; j < (g + 1) * gs; j += 32) {
        const __m256i qv = avx2_unpack_int4(row + j / 2);
        for (int i = 0; i < M; ++i) {
          const __m256i xv = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(a.xq + (i0 + i) * k + j));
          gi[i] = _mm256_add_epi32(gi[i], _mm256_madd_epi16(_mm256_maddubs_epi16(qv, xv), ones));
        }
      }
      const float s = w.scales[r * ng + g], z = w.zeros ? w.zeros[r * ng + g] : 8.0f;
      for (int i = 0; i < M; ++i) {
        const int64_t xg = (i0 + i) * ng + g;
        acc[i] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(gi[i]), _mm256_set1_ps(s * a.xd[xg]), acc[i]);
        zterm[i] += s * z * a.xs[xg];
      }
    }
    for (int i = 0; i < M; ++i) y[(i0 + i) * w.rows + r] = avx2_hsum(acc[i]) - zterm[i] + (bias ? bias[r] : 0.f);
  }
};

// 16 e4m3 bytes as f16 bit patterns (value / 2^8): sign to bit 15, exponent + mantissa to bits 13..7.
TERN_TARGET_AVX2 inline __m256i fp8_to_f16_bits(const uint8_t* p) {
  const __m256i v = _mm256_cvtepu8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
  const __m256i sign = _mm256_slli_epi16(_mm256_and_si256(v, _mm256_set1_epi16(0x80)), 8);
  const __m256i mag = _mm256_slli_epi16(_mm256_and_si256(v, _mm256_set1_epi16(0x7f)), 7);
  return _mm256_or_si256(sign, mag);
}

template <int M>
struct Fp8 {
  TERN_TARGET_AVX2 static void run(const QuantActs& a, const WeightMatrix& w, float* y, const float* bias, int64_t i0,
                                   int64_t r) {
    const int64_t k = w.cols;
    const uint8_t* q = static_cast<const uint8_t*>(w.data) + r * k;
    __m256 acc[M][2];
    for (int i = 0; i < M; ++i) acc[i][0] = acc[i][1] = _mm256_setzero_ps();
    int64_t j = 0;
    for (; j + 16 <= k; j += 16) {
      const __m256i h = fp8_to_f16_bits(q + j);
      const __m256 w0 = _mm256_cvtph_ps(_mm256_castsi256_si128(h));
      const __m256 w1 = _mm256_cvtph_ps(_mm256_extracti128_si256(h, 1));
      for (int i = 0; i < M; ++i) {
        const float* x = a.x + (i0 + i) * k + j;
        acc[i][0] = _mm256_fmadd_ps(_mm256_loadu_ps(x), w0, acc[i][0]);
        acc[i][1] = _mm256_fmadd_ps(_mm256_loadu_ps(x + 8), w1, acc[i][1]);
      }
    }
    for (int i = 0; i < M; ++i) {
      float s = avx2_hsum(_mm256_add_ps(acc[i][0], acc[i][1])) * 256.0f;
      for (int64_t t = j; t < k; ++t) s += a.x[(i0 + i) * k + t] * fp8_e4m3_to_f32(q[t]);
      y[(i0 + i) * w.rows + r] = s * w.scales[r] + (bias ? bias[r] : 0.f);
    }
  }
};

// Up to this many rows of x, one pass over the weights with several row streams (quant_gemv_avx2.cpp)
// beats the cache-blocked per-row driver.
constexpr int64_t kGemvMaxRows = 8;

}  // namespace

TERN_TARGET_AVX2 void quant_widen_rows_avx2(const WeightMatrix& w, int64_t r0, int64_t rows, float* dst) {
  const int64_t k = w.cols;
  if (w.format == WeightFormat::Int8Channel) {
    for (int64_t r = 0; r < rows; ++r) {
      const int8_t* q = static_cast<const int8_t*>(w.data) + (r0 + r) * k;
      const __m256 s = _mm256_set1_ps(w.scales[r0 + r]);
      float* d = dst + r * k;
      int64_t j = 0;
      for (; j + 8 <= k; j += 8)
        _mm256_storeu_ps(d + j, _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(
                                                  _mm_loadl_epi64(reinterpret_cast<const __m128i*>(q + j)))), s));
      for (; j < k; ++j) d[j] = float(q[j]) * w.scales[r0 + r];
    }
    return;
  }
  // Int4Group: k % 32 == 0 (checked by the packer); w = s·(q - z) = q·s - z·s.
  const int64_t ng = k / w.group;
  const __m128i mask = _mm_set1_epi8(0x0f);
  for (int64_t r = 0; r < rows; ++r) {
    const uint8_t* row = static_cast<const uint8_t*>(w.data) + (r0 + r) * (k / 2);
    float* d = dst + r * k;
    for (int64_t b = 0; b < k / 32; ++b) {
      const int64_t g = (r0 + r) * ng + b * 32 / w.group;
      const float sc = w.scales[g], z = w.zeros ? w.zeros[g] : 8.0f;
      const __m256 s = _mm256_set1_ps(sc), zs = _mm256_set1_ps(-z * sc);
      const __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(row + b * 16));
      const __m128i lo = _mm_and_si128(v, mask), hi = _mm_and_si128(_mm_srli_epi16(v, 4), mask);
      const __m128i part[4] = {lo, _mm_unpackhi_epi64(lo, lo), hi, _mm_unpackhi_epi64(hi, hi)};
      for (int p = 0; p < 4; ++p)
        _mm256_storeu_ps(d + b * 32 + 8 * p, _mm256_fmadd_ps(_mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(part[p])), s, zs));
    }
  }
}

TERN_TARGET_AVX2 void quant_w8a16_avx2(const QuantActs& a, const WeightMatrix& w, float* y, const float* bias,
                                       int64_t m0, int64_t m1, int64_t n0, int64_t n1) {
  if (m1 - m0 <= kGemvMaxRows) return quant_gemv_w8a16_avx2(a, w, y, bias, m0, m1, n0, n1);
  quant_drive<W8A16>(a, w, y, bias, m0, m1, n0, n1);
}

TERN_TARGET_AVX2 void quant_w8a8_avx2(const QuantActs& a, const WeightMatrix& w, float* y, const float* bias,
                                      int64_t m0, int64_t m1, int64_t n0, int64_t n1) {
  if (m1 - m0 <= kGemvMaxRows) return quant_gemv_w8a8_avx2(a, w, y, bias, m0, m1, n0, n1);
  quant_drive<W8A8>(a, w, y, bias, m0, m1, n0, n1);
}

TERN_TARGET_AVX2 void quant_int4_avx2(const QuantActs& a, const WeightMatrix& w, float* y, const float* bias,
                                      int64_t m0, int64_t m1, int64_t n0, int64_t n1) {
  if (m1 - m0 <= kGemvMaxRows) return quant_gemv_int4_avx2(a, w, y, bias, m0, m1, n0, n1);
  quant_drive<Int4>(a, w, y, bias, m0, m1, n0, n1);
}

TERN_TARGET_AVX2 void quant_fp8_avx2(const QuantActs& a, const WeightMatrix& w, float* y, const float* bias,
                                     int64_t m0, int64_t m1, int64_t n0, int64_t n1) {
  quant_drive<Fp8>(a, w, y, bias, m0, m1, n0, n1);
}

}  // namespace tern::cpu
