// AVX-512 VBMI2 sparse kernels (sparse_kernels.h). 2:4 int8 decode goes to sparse24_avx512.cpp; the
// bitmask kernel's int8 path (any mask) is sparse_block_i8 below (int16 x, VNNI dot products); the rest
// of this comment describes the bf16 GEMV and the f32 expansion both use for prefill. One vpexpandw (32 bf16 columns) or vpexpandb (64 int8 columns) per step, driven by the step's mask bits straight from memory, loads exactly the
// step's kept values and drops them into their columns' 16-bit / 8-bit lanes (zeros elsewhere). The
// lanes are then widened without any further shuffle: a bf16 in the low half of a 32-bit lane becomes
// f32 by a left shift, one in the high half by masking the low half; an int8 in byte j of a lane
// becomes q·2²⁴ (an exact int32, the 2⁻²⁴ folded into the row scale) by shifting it to the top byte.
// So lane i of the j-th widened vector holds column 2i + j (bf16) or 4i + j (int8) of the step: x is
// de-interleaved the same way once per call (xd), and the only shuffle-port work left per step is the
// expand itself. The values pointer advances by popcount(mask), off the FMA chains.
#include <algorithm>
#include <cstring>
#include <vector>

#include "kernels/cpu/matmul_avx512_util.h"
#include "kernels/cpu/sparse_kernels.h"
#include "kernels/cpu/sparse_x16.h"

#define TERN_TARGET_AVX512_VBMI2 \
  __attribute__((target("avx2,fma,f16c,bmi2,popcnt,avx512f,avx512bw,avx512vl,avx512dq,avx512vbmi2")))
#define TERN_TARGET_AVX512_VNNI_VBMI2 \
  __attribute__((target("avx2,fma,f16c,bmi2,popcnt,avx512f,avx512bw,avx512vl,avx512dq,avx512vbmi2,avx512vnni")))

namespace tern::cpu {

namespace {

constexpr int64_t kPrefetchBytes = 512;
constexpr int64_t kMaskPrefetchBytes = 256;

inline float value_at(const char* p, bool i8) {
  if (i8) return float(*reinterpret_cast<const int8_t*>(p));
  uint16_t h;
  std::memcpy(&h, p, 2);
  return bf16_to_f32(h);
}

// Columns per step: 32 bf16 (one 32-bit mask word) or 64 int8 (one 64-bit mask word).
template <bool I8>
constexpr int64_t kStep = I8 ? 64 : 32;
// Widened vectors per step: 2 (bf16) or 4 (int8).
template <bool I8>
constexpr int kParts = I8 ? 4 : 2;

// x [m, k] de-interleaved per step: xd[i][s·step + p·16 + l] = x[i][s·step + kParts·l + p] for the full
// steps (columns past the last full step are not needed: the tail uses x).
template <bool I8>
void deinterleave(const float* x, int64_t m, int64_t k, float* xd) {
  constexpr int64_t step = kStep<I8>;
  constexpr int parts = kParts<I8>;
  const int64_t full = k / step * step;
  for (int64_t i = 0; i < m; ++i)
    for (int64_t s = 0; s < full; s += step)
      for (int p = 0; p < parts; ++p)
        for (int l = 0; l < 16; ++l) xd[i * full + s + p * 16 + l] = x[i * k + s + parts * l + p];
}

// The step's weights as kParts<I8> f32 vectors (part p, lane l = column kParts·l + p); advances p.
template <bool I8>
TERN_TARGET_AVX512_VBMI2 inline void expand_step(const uint8_t* mask, const char*& p, __m512 out[]) {
  if constexpr (I8) {
    uint64_t bits;
    std::memcpy(&bits, mask, 8);
    const __m512i v = _mm512_maskz_expandloadu_epi8(bits, p);
    p += _mm_popcnt_u64(bits);
    const __m512i top = _mm512_set1_epi32(int(0xFF000000u));
    out[0] = _mm512_cvtepi32_ps(_mm512_slli_epi32(v, 24));
    out[1] = _mm512_cvtepi32_ps(_mm512_and_si512(_mm512_slli_epi32(v, 16), top));
    out[2] = _mm512_cvtepi32_ps(_mm512_and_si512(_mm512_slli_epi32(v, 8), top));
    out[3] = _mm512_cvtepi32_ps(_mm512_and_si512(v, top));
  } else {
    uint32_t bits;
    std::memcpy(&bits, mask, 4);
    const __m512i v = _mm512_maskz_expandloadu_epi16(bits, p);
    p += 2 * _mm_popcnt_u32(bits);
    out[0] = _mm512_castsi512_ps(_mm512_slli_epi32(v, 16));
    out[1] = _mm512_castsi512_ps(_mm512_and_si512(v, _mm512_set1_epi32(int(0xFFFF0000u))));
  }
}

// y[0:M, r] for the R rows r = r0 + s * stride (R far-apart read streams). xd: x de-interleaved.
template <bool I8, int M, int R>
TERN_TARGET_AVX512_VBMI2 void sparse_block(const float* x, const float* xd, const WeightMatrix& w, float* y,
                                           const float* bias, int64_t r0, int64_t stride) {
  const int64_t k = w.cols, n = w.rows, mstride = (k + 7) / 8;
  constexpr int64_t es = I8 ? 1 : 2, step = kStep<I8>;
  constexpr int parts = kParts<I8>;
  const int64_t full = k / step * step;
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
  for (int64_t j = 0; j < full; j += step) {
#pragma GCC unroll 8
    for (int r = 0; r < R; ++r) _mm_prefetch(p[r] + kPrefetchBytes, _MM_HINT_T0);
    __m512 wv[R][parts];
#pragma GCC unroll 8
    for (int r = 0; r < R; ++r) expand_step<I8>(mk[r] + (j >> 3), p[r], wv[r]);
#pragma GCC unroll 8
    for (int q = 0; q < parts; ++q) {
#pragma GCC unroll 8
      for (int i = 0; i < M; ++i) {
        const __m512 xv = _mm512_loadu_ps(xd + i * full + j + 16 * q);
#pragma GCC unroll 8
        for (int r = 0; r < R; ++r) acc[i][r] = _mm512_fmadd_ps(xv, wv[r][q], acc[i][r]);
      }
    }
  }
  for (int r = 0; r < R; ++r) {
    const int64_t row = r0 + r * stride;
    const float s = I8 ? w.scales[row] * (1.f / 16777216.f) : 1.f;
    float tail[M] = {};
    for (int64_t t = full; t < k; ++t) {
      if (!(mk[r][t >> 3] >> (t & 7) & 1)) continue;
      const float v = value_at(p[r], I8) * (I8 ? 16777216.f : 1.f);
      p[r] += es;
      for (int i = 0; i < M; ++i) tail[i] += x[i * k + t] * v;
    }
    for (int i = 0; i < M; ++i)
      y[i * n + row] = (avx512_hsum(acc[i][r]) + tail[i]) * s + (bias ? bias[row] : 0.f);
  }
}

// int8 values on int16 x (sparse_x16.h): per 64-column step one vpexpandb puts the step's kept int8
// values into their columns' bytes, two vpmovsxbw widen them in column order (so x16 is used as it
// is, no de-interleaving) and two vpdpwssd add the products into int32 lanes; once per block of
// kSparseX16Block columns the int32 sums are converted and scaled into f32 accumulators. Compared with
// widening every weight to f32 (4 shifts / masks + 4 conversions + 4 FMAs per step) this is 2 widenings
// + 2 dot products per step. The k % 64 tail columns use f32 x.
template <int M, int R>
TERN_TARGET_AVX512_VNNI_VBMI2 void sparse_block_i8(const float* x, const SparseX16& xq, const WeightMatrix& w, float* y,
                                                   const float* bias, int64_t r0, int64_t stride) {
  const int64_t k = w.cols, n = w.rows, mstride = (k + 7) / 8;
  const int64_t full = k / 64 * 64;
  const char* p[R];
  const uint8_t* mk[R];
  for (int r = 0; r < R; ++r) {
    const int64_t row = r0 + r * stride;
    p[r] = static_cast<const char*>(w.data) + w.row_offsets[row];
    mk[r] = w.mask + row * mstride;
  }
  __m512 facc[M][R];
#pragma GCC unroll 8
  for (int i = 0; i < M; ++i)
#pragma GCC unroll 8
    for (int r = 0; r < R; ++r) facc[i][r] = _mm512_setzero_ps();
  for (int64_t j0 = 0; j0 < full; j0 += kSparseX16Block) {
    const int64_t j1 = std::min(full, j0 + kSparseX16Block);
    // Two int32 accumulators per (i, r) when the registers allow (M = 1): the step's two vpdpwssd then
    // go to separate chains instead of one chain two deep (which bounds a row at 2 latencies a step).
    constexpr int A = M == 1 ? 2 : 1;
    __m512i acc[M][R][A];
#pragma GCC unroll 8
    for (int i = 0; i < M; ++i)
#pragma GCC unroll 8
      for (int r = 0; r < R; ++r)
#pragma GCC unroll 2
        for (int a = 0; a < A; ++a) acc[i][r][a] = _mm512_setzero_si512();
    for (int64_t j = j0; j < j1; j += 64) {
      __m512i lo[R], hi[R];
#pragma GCC unroll 8
      for (int r = 0; r < R; ++r) {
        _mm_prefetch(p[r] + kPrefetchBytes, _MM_HINT_T0);
        // The mask stream (8 bytes a step) too, once per cache line.
        if ((j & 511) == 0) _mm_prefetch(reinterpret_cast<const char*>(mk[r] + (j >> 3)) + kMaskPrefetchBytes, _MM_HINT_T0);
        uint64_t bits;
        std::memcpy(&bits, mk[r] + (j >> 3), 8);
        const __m512i v = _mm512_maskz_expandloadu_epi8(bits, p[r]);
        p[r] += _mm_popcnt_u64(bits);
        lo[r] = _mm512_cvtepi8_epi16(_mm512_castsi512_si256(v));
        hi[r] = _mm512_cvtepi8_epi16(_mm512_extracti64x4_epi64(v, 1));
      }
#pragma GCC unroll 8
      for (int i = 0; i < M; ++i) {
        const int16_t* xi = xq.q.data() + i * k + j;
        const __m512i x0 = _mm512_loadu_si512(xi), x1 = _mm512_loadu_si512(xi + 32);
#pragma GCC unroll 8
        for (int r = 0; r < R; ++r) {
          acc[i][r][0] = _mm512_dpwssd_epi32(acc[i][r][0], lo[r], x0);
          acc[i][r][A - 1] = _mm512_dpwssd_epi32(acc[i][r][A - 1], hi[r], x1);
        }
      }
    }
#pragma GCC unroll 8
    for (int i = 0; i < M; ++i) {
      const __m512 d = _mm512_set1_ps(xq.d[size_t(i * xq.blocks + j0 / kSparseX16Block)]);
#pragma GCC unroll 8
      for (int r = 0; r < R; ++r) {
        const __m512i sum = A == 2 ? _mm512_add_epi32(acc[i][r][0], acc[i][r][A - 1]) : acc[i][r][0];
        facc[i][r] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(sum), d, facc[i][r]);
      }
    }
  }
  for (int r = 0; r < R; ++r) {
    const int64_t row = r0 + r * stride;
    float tail[M] = {};
    for (int64_t t = full; t < k; ++t) {
      if (!(mk[r][t >> 3] >> (t & 7) & 1)) continue;
      const float v = float(*reinterpret_cast<const int8_t*>(p[r]++));
      for (int i = 0; i < M; ++i) tail[i] += x[i * k + t] * v;
    }
    for (int i = 0; i < M; ++i)
      y[i * n + row] = (avx512_hsum(facc[i][r]) + tail[i]) * w.scales[row] + (bias ? bias[row] : 0.f);
  }
}

template <int M>
void sparse_rows_i8(const float* x, const SparseX16& xq, const WeightMatrix& w, float* y, const float* bias,
                    int64_t n0, int64_t n1) {
  // M·R f32 + M·R int32 accumulators + 2R weight vectors + 2 x vectors within the 32 zmm registers.
  constexpr int R = M <= 2 ? 4 : M <= 4 ? 2 : 1;
  const int64_t part = (n1 - n0) / R;
  for (int64_t b = 0; b < part; ++b) sparse_block_i8<M, R>(x, xq, w, y, bias, n0 + b, part);
  for (int64_t r = n0 + R * part; r < n1; ++r) sparse_block_i8<M, 1>(x, xq, w, y, bias, r, 0);
}

void sparse_m_i8(const float* x, int64_t m, const WeightMatrix& w, float* y, const float* bias, int64_t n0,
                 int64_t n1) {
  const SparseX16 xq = sparse_x16_avx2(x, m, w.cols);
  switch (m) {
    case 1: return sparse_rows_i8<1>(x, xq, w, y, bias, n0, n1);
    case 2: return sparse_rows_i8<2>(x, xq, w, y, bias, n0, n1);
    case 3: return sparse_rows_i8<3>(x, xq, w, y, bias, n0, n1);
    case 4: return sparse_rows_i8<4>(x, xq, w, y, bias, n0, n1);
    case 5: return sparse_rows_i8<5>(x, xq, w, y, bias, n0, n1);
    case 6: return sparse_rows_i8<6>(x, xq, w, y, bias, n0, n1);
    case 7: return sparse_rows_i8<7>(x, xq, w, y, bias, n0, n1);
    default: return sparse_rows_i8<8>(x, xq, w, y, bias, n0, n1);
  }
}

template <bool I8, int M>
void sparse_rows(const float* x, const float* xd, const WeightMatrix& w, float* y, const float* bias, int64_t n0,
                 int64_t n1) {
  // M·R accumulators + R·kParts weight vectors + one x vector within the 32 zmm registers.
  constexpr int R = M <= 2 ? 4 : M <= 4 ? 2 : 1;
  const int64_t part = (n1 - n0) / R;
  for (int64_t b = 0; b < part; ++b) sparse_block<I8, M, R>(x, xd, w, y, bias, n0 + b, part);
  for (int64_t r = n0 + R * part; r < n1; ++r) sparse_block<I8, M, 1>(x, xd, w, y, bias, r, 0);
}

template <bool I8>
void sparse_m(const float* x, int64_t m, const WeightMatrix& w, float* y, const float* bias, int64_t n0, int64_t n1) {
  std::vector<float> xd(size_t(m * (w.cols / kStep<I8> * kStep<I8>)));
  deinterleave<I8>(x, m, w.cols, xd.data());
  switch (m) {
    case 1: return sparse_rows<I8, 1>(x, xd.data(), w, y, bias, n0, n1);
    case 2: return sparse_rows<I8, 2>(x, xd.data(), w, y, bias, n0, n1);
    case 3: return sparse_rows<I8, 3>(x, xd.data(), w, y, bias, n0, n1);
    case 4: return sparse_rows<I8, 4>(x, xd.data(), w, y, bias, n0, n1);
    case 5: return sparse_rows<I8, 5>(x, xd.data(), w, y, bias, n0, n1);
    case 6: return sparse_rows<I8, 6>(x, xd.data(), w, y, bias, n0, n1);
    case 7: return sparse_rows<I8, 7>(x, xd.data(), w, y, bias, n0, n1);
    default: return sparse_rows<I8, 8>(x, xd.data(), w, y, bias, n0, n1);
  }
}

}  // namespace

void sparse_gemv_avx512(const float* x, int64_t m, const WeightMatrix& w, float* y, const float* bias, int64_t n0,
                        int64_t n1) {
  // The 2:4 kernel's index decode needs VBMI (vpmultishiftqb, vpermb); every CPU with VBMI2 so far has it.
  if (w.dtype == DType::I8 && __builtin_cpu_supports("avx512vbmi"))
    return sparse24_gemv_i8_avx512(x, m, w, y, bias, n0, n1);
  sparse_gemv_bitmask_avx512(x, m, w, y, bias, n0, n1);
}

void sparse_gemv_bitmask_avx512(const float* x, int64_t m, const WeightMatrix& w, float* y, const float* bias,
                                int64_t n0, int64_t n1) {
  for (int64_t i0 = 0; i0 < m; i0 += 8) {
    const int64_t mi = m - i0 < 8 ? m - i0 : 8;
    if (w.dtype == DType::I8) {
      sparse_m_i8(x + i0 * w.cols, mi, w, y + i0 * w.rows, bias, n0, n1);
    } else {
      sparse_m<false>(x + i0 * w.cols, mi, w, y + i0 * w.rows, bias, n0, n1);
    }
  }
}

TERN_TARGET_AVX512_VBMI2 void sparse_expand_rows_avx512(const WeightMatrix& w, int64_t r0, int64_t rows, float* dst) {
  const int64_t k = w.cols, mstride = (k + 7) / 8;
  const bool i8 = w.dtype == DType::I8;
  const int64_t step = i8 ? kStep<true> : kStep<false>, full = k / step * step;
  const int parts = i8 ? kParts<true> : kParts<false>;
  for (int64_t r = 0; r < rows; ++r) {
    const int64_t row = r0 + r;
    const uint8_t* mk = w.mask + row * mstride;
    const char* p = static_cast<const char*>(w.data) + w.row_offsets[row] * (i8 ? 1 : 2);
    const float s = i8 ? w.scales[row] : 1.f;
    const __m512 sv = _mm512_set1_ps(i8 ? s * (1.f / 16777216.f) : 1.f);
    float* d = dst + r * k;
    for (int64_t j = 0; j < full; j += step) {
      __m512 v[4];
      if (i8) expand_step<true>(mk + (j >> 3), p, v);
      else expand_step<false>(mk + (j >> 3), p, v);
      alignas(64) float t[64];
      for (int q = 0; q < parts; ++q) _mm512_store_ps(t + 16 * q, _mm512_mul_ps(v[q], sv));
      for (int q = 0; q < parts; ++q)
        for (int l = 0; l < 16; ++l) d[j + parts * l + q] = t[16 * q + l];
    }
    for (int64_t j = full; j < k; ++j) {
      d[j] = 0.f;
      if (!(mk[j >> 3] >> (j & 7) & 1)) continue;
      d[j] = value_at(p, i8) * s;
      p += i8 ? 1 : 2;
    }
  }
}

}  // namespace tern::cpu
