// AVX-512 VBMI2 sparse kernels (sparse_kernels.h). 16 columns per step: their 16 mask bits, spread by
// pdep onto the top 16-bit half (bf16) or top byte (int8) of each 32-bit lane, drive one vpexpandw /
// vpexpandb that loads exactly the step's kept values and drops them into those lanes. A bf16 in the
// top half of a lane is its f32 value; an int8 in the top byte is q·2²⁴ as an int32 (the 2⁻²⁴ folds
// into the row scale). The values pointer advances by popcount(mask), off the FMA chains.
#include <cstring>

#include "kernels/cpu/matmul_avx512_util.h"
#include "kernels/cpu/sparse_kernels.h"

#define TERN_TARGET_AVX512_VBMI2 \
  __attribute__((target("avx2,fma,f16c,bmi2,popcnt,avx512f,avx512bw,avx512vl,avx512dq,avx512vbmi2")))

namespace tern::cpu {

namespace {

constexpr int64_t kPrefetchBytes = 512;

// 16 weights (columns j..j+15 of the row whose 16 mask bits are `bits`) as f32, from *p on; advances *p.
template <bool I8>
TERN_TARGET_AVX512_VBMI2 inline __m512 expand16(uint32_t bits, const char*& p) {
  if constexpr (I8) {
    const __m512i v = _mm512_maskz_expandloadu_epi8(_pdep_u64(bits, 0x8888888888888888ull), p);
    p += _mm_popcnt_u32(bits);
    return _mm512_cvtepi32_ps(v);
  } else {
    const __m512i v = _mm512_maskz_expandloadu_epi16(_pdep_u32(bits, 0xAAAAAAAAu), p);
    p += 2 * _mm_popcnt_u32(bits);
    return _mm512_castsi512_ps(v);
  }
}

inline uint32_t mask16(const uint8_t* m) {
  uint16_t v;
  std::memcpy(&v, m, 2);
  return v;
}

inline float value_at(const char* p, bool i8) {
  if (i8) return float(*reinterpret_cast<const int8_t*>(p));
  uint16_t h;
  std::memcpy(&h, p, 2);
  return bf16_to_f32(h);
}

// y[0:M, r] for the R rows r = r0 + s * stride (R far-apart read streams).
template <bool I8, int M, int R>
TERN_TARGET_AVX512_VBMI2 void sparse_block(const float* x, const WeightMatrix& w, float* y, const float* bias,
                                           int64_t r0, int64_t stride) {
  const int64_t k = w.cols, n = w.rows, mstride = (k + 7) / 8;
  constexpr int64_t es = I8 ? 1 : 2;
  const char* p[R];
  const uint8_t* mk[R];
  for (int r = 0; r < R; ++r) {
    const int64_t row = r0 + r * stride;
    p[r] = static_cast<const char*>(w.data) + w.row_offsets[row] * es;
    mk[r] = w.mask + row * mstride;
  }
  __m512 acc[M][R];
#pragma GCC unroll 8
  for (int i = 0; i < M; ++i)
#pragma GCC unroll 8
    for (int r = 0; r < R; ++r) acc[i][r] = _mm512_setzero_ps();
  int64_t j = 0;
  for (; j + 16 <= k; j += 16) {
    if ((j & 63) == 0) {
#pragma GCC unroll 8
      for (int r = 0; r < R; ++r) _mm_prefetch(p[r] + kPrefetchBytes, _MM_HINT_T0);
    }
    __m512 wv[R];
#pragma GCC unroll 8
    for (int r = 0; r < R; ++r) wv[r] = expand16<I8>(mask16(mk[r] + (j >> 3)), p[r]);
#pragma GCC unroll 8
    for (int i = 0; i < M; ++i) {
      const __m512 xv = _mm512_loadu_ps(x + i * k + j);
#pragma GCC unroll 8
      for (int r = 0; r < R; ++r) acc[i][r] = _mm512_fmadd_ps(xv, wv[r], acc[i][r]);
    }
  }
  for (int r = 0; r < R; ++r) {
    const int64_t row = r0 + r * stride;
    const float s = I8 ? w.scales[row] * (1.f / 16777216.f) : 1.f;
    float tail[M] = {};
    for (int64_t t = j; t < k; ++t) {
      if (!(mk[r][t >> 3] >> (t & 7) & 1)) continue;
      const float v = value_at(p[r], I8) * (I8 ? 16777216.f : 1.f);
      p[r] += es;
      for (int i = 0; i < M; ++i) tail[i] += x[i * k + t] * v;
    }
    for (int i = 0; i < M; ++i)
      y[i * n + row] = (avx512_hsum(acc[i][r]) + tail[i]) * s + (bias ? bias[row] : 0.f);
  }
}

template <bool I8, int M>
void sparse_rows(const float* x, const WeightMatrix& w, float* y, const float* bias, int64_t n0, int64_t n1) {
  constexpr int R = M <= 4 ? 4 : 2;
  const int64_t part = (n1 - n0) / R;
  for (int64_t b = 0; b < part; ++b) sparse_block<I8, M, R>(x, w, y, bias, n0 + b, part);
  for (int64_t r = n0 + R * part; r < n1; ++r) sparse_block<I8, M, 1>(x, w, y, bias, r, 0);
}

template <bool I8>
void sparse_m(const float* x, int64_t m, const WeightMatrix& w, float* y, const float* bias, int64_t n0, int64_t n1) {
  switch (m) {
    case 1: return sparse_rows<I8, 1>(x, w, y, bias, n0, n1);
    case 2: return sparse_rows<I8, 2>(x, w, y, bias, n0, n1);
    case 3: return sparse_rows<I8, 3>(x, w, y, bias, n0, n1);
    case 4: return sparse_rows<I8, 4>(x, w, y, bias, n0, n1);
    case 5: return sparse_rows<I8, 5>(x, w, y, bias, n0, n1);
    case 6: return sparse_rows<I8, 6>(x, w, y, bias, n0, n1);
    case 7: return sparse_rows<I8, 7>(x, w, y, bias, n0, n1);
    default: return sparse_rows<I8, 8>(x, w, y, bias, n0, n1);
  }
}

}  // namespace

void sparse_gemv_avx512(const float* x, int64_t m, const WeightMatrix& w, float* y, const float* bias, int64_t n0,
                        int64_t n1) {
  for (int64_t i0 = 0; i0 < m; i0 += 8) {
    const int64_t mi = m - i0 < 8 ? m - i0 : 8;
    if (w.dtype == DType::I8) {
      sparse_m<true>(x + i0 * w.cols, mi, w, y + i0 * w.rows, bias, n0, n1);
    } else {
      sparse_m<false>(x + i0 * w.cols, mi, w, y + i0 * w.rows, bias, n0, n1);
    }
  }
}

TERN_TARGET_AVX512_VBMI2 void sparse_expand_rows_avx512(const WeightMatrix& w, int64_t r0, int64_t rows, float* dst) {
  const int64_t k = w.cols, mstride = (k + 7) / 8;
  const bool i8 = w.dtype == DType::I8;
  for (int64_t r = 0; r < rows; ++r) {
    const int64_t row = r0 + r;
    const uint8_t* mk = w.mask + row * mstride;
    const char* p = static_cast<const char*>(w.data) + w.row_offsets[row] * (i8 ? 1 : 2);
    const float s = i8 ? w.scales[row] : 1.f;
    const __m512 sv = _mm512_set1_ps(i8 ? s * (1.f / 16777216.f) : 1.f);
    float* d = dst + r * k;
    int64_t j = 0;
    for (; j + 16 <= k; j += 16) {
      const uint32_t bits = mask16(mk + (j >> 3));
      const __m512 v = i8 ? expand16<true>(bits, p) : expand16<false>(bits, p);
      _mm512_storeu_ps(d + j, _mm512_mul_ps(v, sv));
    }
    for (; j < k; ++j) {
      d[j] = 0.f;
      if (!(mk[j >> 3] >> (j & 7) & 1)) continue;
      d[j] = value_at(p, i8) * s;
      p += i8 ? 1 : 2;
    }
  }
}

}  // namespace tern::cpu
