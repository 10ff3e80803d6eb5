// AVX2 sparse kernels (sparse_kernels.h). 8 columns per step: the step's mask byte picks a 32-byte
// vpshufb control from a 256-entry table, which moves the next (up to 8) stored values, broadcast to
// both 128-bit lanes, into the top half (bf16: the f32 value) or top byte (int8: q·2²⁴ as int32) of
// the 32-bit lane of their column; the other lanes get zero. The values pointer advances by
// popcount(mask byte). Loads read 16 (bf16) or 8 (int8) bytes from the pointer; the last few steps
// of a tensor, where that would run past its values, copy them first.
#include <immintrin.h>

#include <array>
#include <cstring>

#include "kernels/cpu/matmul_avx2_util.h"
#include "kernels/cpu/sparse_kernels.h"

#define TERN_TARGET_AVX2_SPARSE __attribute__((target("avx2,fma,f16c,popcnt")))

namespace tern::cpu {

namespace {

// Control bytes for one mask byte: [col c of 8][4 bytes of its 32-bit lane]. Lane 0 of the ymm holds
// columns 0-3, lane 1 columns 4-7; both lanes see the same 16 source bytes.
using Table = std::array<std::array<uint8_t, 32>, 256>;

constexpr Table make_table(bool i8) {
  Table t{};
  for (int b = 0; b < 256; ++b) {
    int rank = 0;
    for (int c = 0; c < 8; ++c) {
      for (int q = 0; q < 4; ++q) t[b][4 * c + q] = 0x80;
      if (!(b >> c & 1)) continue;
      if (i8) {
        t[b][4 * c + 3] = uint8_t(rank);
      } else {
        t[b][4 * c + 2] = uint8_t(2 * rank);
        t[b][4 * c + 3] = uint8_t(2 * rank + 1);
      }
      ++rank;
    }
  }
  return t;
}

alignas(64) constexpr Table kBf16Table = make_table(false);
alignas(64) constexpr Table kI8Table = make_table(true);

constexpr int64_t kPrefetchBytes = 512;

// The next 8 columns (mask byte b) as f32 (int8: q·2²⁴); advances p. `end`: the tensor's last value + 1.
// Checked: p may be within 16 bytes of `end` (the last rows of a tensor); otherwise the 16-byte load
// is known to stay inside the values and is a plain vbroadcasti128.
template <bool I8, bool Checked = true>
TERN_TARGET_AVX2_SPARSE inline __m256 expand8(unsigned b, const char*& p, const char* end) {
  constexpr int64_t load = I8 ? 8 : 16;
  __m256i src;
  if (!Checked || p + load <= end) {
    src = I8 ? _mm256_broadcastq_epi64(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(p)))
             : _mm256_broadcastsi128_si256(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
  } else {
    alignas(16) uint8_t tmp[16] = {};
    std::memcpy(tmp, p, size_t(end - p));
    src = _mm256_broadcastsi128_si256(_mm_load_si128(reinterpret_cast<const __m128i*>(tmp)));
  }
  const __m256i ctrl =
      _mm256_load_si256(reinterpret_cast<const __m256i*>(I8 ? kI8Table[b].data() : kBf16Table[b].data()));
  const __m256i v = _mm256_shuffle_epi8(src, ctrl);
  p += (I8 ? 1 : 2) * _mm_popcnt_u32(b);
  // Keeps the R row pointers in scalar registers: GCC otherwise packs their updates into a vector
  // (vpinsrd / vpaddq / vpextrq per step).
  asm("" : "+r"(p));
  return I8 ? _mm256_cvtepi32_ps(v) : _mm256_castsi256_ps(v);
}

inline float value_at(const char* p, bool i8) {
  if (i8) return float(*reinterpret_cast<const int8_t*>(p));
  uint16_t h;
  std::memcpy(&h, p, 2);
  return bf16_to_f32(h);
}

template <bool I8, int M, int R, bool Checked>
TERN_TARGET_AVX2_SPARSE void sparse_block(const float* x, const WeightMatrix& w, float* y, const float* bias,
                                          int64_t r0, int64_t stride) {
  const int64_t k = w.cols, n = w.rows, mstride = (k + 7) / 8;
  constexpr int64_t es = I8 ? 1 : 2;
  const char* end = static_cast<const char*>(w.data) + w.nnz * es;
  const char* p[R];
  const uint8_t* mk[R];
  for (int r = 0; r < R; ++r) {
    const int64_t row = r0 + r * stride;
    p[r] = static_cast<const char*>(w.data) + w.row_offsets[row] * es;
    mk[r] = w.mask + row * mstride;
  }
  __m256 acc[M][R];
#pragma GCC unroll 8
  for (int i = 0; i < M; ++i)
#pragma GCC unroll 8
    for (int r = 0; r < R; ++r) acc[i][r] = _mm256_setzero_ps();
  int64_t j = 0;
  for (; j + 8 <= k; j += 8) {
    if ((j & 63) == 0) {
#pragma GCC unroll 8
      for (int r = 0; r < R; ++r) _mm_prefetch(p[r] + kPrefetchBytes, _MM_HINT_T0);
    }
    __m256 wv[R];
#pragma GCC unroll 8
    for (int r = 0; r < R; ++r) wv[r] = expand8<I8, Checked>(mk[r][j >> 3], p[r], end);
#pragma GCC unroll 8
    for (int i = 0; i < M; ++i) {
      const __m256 xv = _mm256_loadu_ps(x + i * k + j);
#pragma GCC unroll 8
      for (int r = 0; r < R; ++r) acc[i][r] = _mm256_fmadd_ps(xv, wv[r], acc[i][r]);
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
    for (int i = 0; i < M; ++i) y[i * n + row] = (avx2_hsum(acc[i][r]) + tail[i]) * s + (bias ? bias[row] : 0.f);
  }
}

template <bool I8, int M>
void sparse_rows(const float* x, const WeightMatrix& w, float* y, const float* bias, int64_t n0, int64_t n1) {
  // M*R accumulators + R weight vectors + one x vector within the 16 ymm registers.
  constexpr int R = M <= 2 ? 4 : M <= 4 ? 2 : 1;
  // A row whose reads cannot pass the values' end even if it kept every column takes the unchecked loop.
  const int64_t es = I8 ? 1 : 2;
  const auto safe = [&](int64_t row) { return (w.row_offsets[row] + w.cols) * es + 16 <= w.nnz * es; };
  const int64_t part = (n1 - n0) / R;
  for (int64_t b = 0; b < part; ++b) {
    // The rows of a block are b, b + part, ...: the last is the one nearest the end.
    if (safe(n0 + b + (R - 1) * part)) {
      sparse_block<I8, M, R, false>(x, w, y, bias, n0 + b, part);
    } else {
      sparse_block<I8, M, R, true>(x, w, y, bias, n0 + b, part);
    }
  }
  for (int64_t r = n0 + R * part; r < n1; ++r) {
    if (safe(r)) {
      sparse_block<I8, M, 1, false>(x, w, y, bias, r, 0);
    } else {
      sparse_block<I8, M, 1, true>(x, w, y, bias, r, 0);
    }
  }
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

void sparse_gemv_bitmask_avx2(const float* x, int64_t m, const WeightMatrix& w, float* y, const float* bias,
                              int64_t n0, int64_t n1) {
  for (int64_t i0 = 0; i0 < m; i0 += 8) {
    const int64_t mi = m - i0 < 8 ? m - i0 : 8;
    if (w.dtype == DType::I8) {
      sparse_m<true>(x + i0 * w.cols, mi, w, y + i0 * w.rows, bias, n0, n1);
    } else {
      sparse_m<false>(x + i0 * w.cols, mi, w, y + i0 * w.rows, bias, n0, n1);
    }
  }
}

void sparse_gemv_avx2(const float* x, int64_t m, const WeightMatrix& w, float* y, const float* bias, int64_t n0,
                      int64_t n1) {
  // int8 rows that keep 2 of every 4 columns gather x instead (sparse24_avx2.cpp; it checks each row).
  if (w.dtype == DType::I8 && w.cols >= 32) return sparse24_gemv_i8_avx2(x, m, w, y, bias, n0, n1);
  sparse_gemv_bitmask_avx2(x, m, w, y, bias, n0, n1);
}

TERN_TARGET_AVX2_SPARSE void sparse_expand_rows_avx2(const WeightMatrix& w, int64_t r0, int64_t rows, float* dst) {
  const int64_t k = w.cols, mstride = (k + 7) / 8;
  const bool i8 = w.dtype == DType::I8;
  const char* end = static_cast<const char*>(w.data) + w.nnz * (i8 ? 1 : 2);
  for (int64_t r = 0; r < rows; ++r) {
    const int64_t row = r0 + r;
    const uint8_t* mk = w.mask + row * mstride;
    const char* p = static_cast<const char*>(w.data) + w.row_offsets[row] * (i8 ? 1 : 2);
    const float s = i8 ? w.scales[row] : 1.f;
    const __m256 sv = _mm256_set1_ps(i8 ? s * (1.f / 16777216.f) : 1.f);
    float* d = dst + r * k;
    int64_t j = 0;
    for (; j + 8 <= k; j += 8) {
      const __m256 v = i8 ? expand8<true>(mk[j >> 3], p, end) : expand8<false>(mk[j >> 3], p, end);
      _mm256_storeu_ps(d + j, _mm256_mul_ps(v, sv));
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
