// The int8 sparse GEMVs' activations (sparse_avx512.cpp, sparse24_avx2.cpp): x [m, k] f32 as int16 codes
// per block of kSparseX16Block columns, scale = max|x| / 32767 over the block, q = round(x / scale).
// The kernels multiply the int8 weights by these codes in int32 (vpdpwssd / vpmaddwd: no widening of
// each weight to f32) and convert once per block and row. Rounding: |x − scale·q| <= scale / 2 =
// 1/65534 of the block's max, far below the bf16 rounding a bf16 model's activations already carry;
// tests/unit/test_sparse_kernels.cpp checks the kernels against exactly that bound.
// Overflow: a block adds at most 256 / 16 = 16 products of |q_w| <= 127 and |q_x| <= 32767 per int32
// lane (< 2^26).
// The kernels build it with sparse_x16_avx2 (the same codes, vectorized: the scalar loop's std::nearbyint
// is a libm call per element at the baseline ISA, ~3% of a 2:4 int8 GEMV).
#pragma once

#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

namespace tern::cpu {

inline constexpr int64_t kSparseX16Block = 256;

// The end of one weight row in the 2:4 int8 kernels (sparse24_avx2.cpp, sparse24_avx512.cpp): the kept
// columns in [full, k), past the last vector step, in scalar (mask bit order; p advances over their
// values), then y[i·n + row] = (sums[i] + that tail) · scale + bias for each of the M rows of x [M, k].
template <int M>
inline void sparse_i8_finish_row(const uint8_t* mask, const int8_t* p, const float* x, int64_t k, int64_t full,
                                 const float* sums, float scale, float bias, float* y, int64_t n, int64_t row) {
  float tail[M] = {};
  for (int64_t t = full; t < k; ++t) {
    if (!(mask[t >> 3] >> (t & 7) & 1)) continue;
    const float v = float(*p++);
    for (int i = 0; i < M; ++i) tail[i] += x[i * k + t] * v;
  }
  for (int i = 0; i < M; ++i) y[i * n + row] = (sums[i] + tail[i]) * scale + bias;
}

struct SparseX16 {
  int64_t k = 0, blocks = 0;
  std::vector<int16_t> q;  // [m, k]
  std::vector<float> d;    // [m, blocks]

  struct Uninitialized {};
  SparseX16(Uninitialized, int64_t m, int64_t cols)
      : k(cols), blocks((cols + kSparseX16Block - 1) / kSparseX16Block), q(size_t(m * cols)), d(size_t(m * blocks)) {}

  // The scalar reference of the codes.
  SparseX16(const float* x, int64_t m, int64_t cols) : SparseX16(Uninitialized{}, m, cols) {
    for (int64_t i = 0; i < m; ++i) {
      for (int64_t b = 0; b < blocks; ++b) {
        const int64_t j0 = b * kSparseX16Block, j1 = std::min(k, j0 + kSparseX16Block);
        float amax = 0.f;
        for (int64_t j = j0; j < j1; ++j) amax = std::max(amax, std::fabs(x[i * k + j]));
        const float scale = amax / 32767.f, inv = amax > 0.f ? 32767.f / amax : 0.f;
        d[size_t(i * blocks + b)] = scale;
        for (int64_t j = j0; j < j1; ++j)
          q[size_t(i * k + j)] = int16_t(std::clamp(std::nearbyint(x[i * k + j] * inv), -32767.f, 32767.f));
      }
    }
  }
};

namespace {

// SparseX16(x, m, cols) with AVX2: the same scales and the same codes (x · inv rounded to nearest even,
// as std::nearbyint in the default rounding mode).
__attribute__((target("avx2,fma,f16c"))) inline SparseX16 sparse_x16_avx2(const float* x, int64_t m, int64_t cols) {
  SparseX16 xq(SparseX16::Uninitialized{}, m, cols);
  const __m256 abs_mask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff));
  for (int64_t i = 0; i < m; ++i) {
    for (int64_t b = 0; b < xq.blocks; ++b) {
      const int64_t j0 = b * kSparseX16Block, j1 = std::min(cols, j0 + kSparseX16Block);
      const float* xi = x + i * cols;
      __m256 vmax = _mm256_setzero_ps();
      int64_t j = j0;
      for (; j + 8 <= j1; j += 8) vmax = _mm256_max_ps(vmax, _mm256_and_ps(_mm256_loadu_ps(xi + j), abs_mask));
      __m128 h = _mm_max_ps(_mm256_castps256_ps128(vmax), _mm256_extractf128_ps(vmax, 1));
      h = _mm_max_ps(h, _mm_movehl_ps(h, h));
      h = _mm_max_ss(h, _mm_movehdup_ps(h));
      float amax = _mm_cvtss_f32(h);
      for (; j < j1; ++j) amax = std::max(amax, std::fabs(xi[j]));
      const float inv = amax > 0.f ? 32767.f / amax : 0.f;
      xq.d[size_t(i * xq.blocks + b)] = amax / 32767.f;
      const __m256 vinv = _mm256_set1_ps(inv);
      int16_t* qi = xq.q.data() + i * cols;
      j = j0;
      for (; j + 16 <= j1; j += 16) {
        const __m256i a = _mm256_cvtps_epi32(_mm256_mul_ps(_mm256_loadu_ps(xi + j), vinv));
        const __m256i c = _mm256_cvtps_epi32(_mm256_mul_ps(_mm256_loadu_ps(xi + j + 8), vinv));
        // packs interleaves the 128-bit lanes: vpermq puts the 16 codes back in column order.
        _mm256_storeu_si256(reinterpret_cast<__m256i*>(qi + j), _mm256_permute4x64_epi64(_mm256_packs_epi32(a, c), 0xD8));
      }
      for (; j < j1; ++j) qi[j] = int16_t(std::clamp(std::nearbyint(xi[j] * inv), -32767.f, 32767.f));
    }
  }
  return xq;
}

}  // namespace

}  // namespace tern::cpu
