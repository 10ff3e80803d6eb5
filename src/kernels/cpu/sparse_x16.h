// The int8 sparse GEMVs' activations (sparse_avx512.cpp, sparse_avx2.cpp): x [m, k] f32 as int16 codes
// per block of kSparseX16Block columns, scale = max|x| / 32767 over the block, q = round(x / scale).
// The kernels multiply the int8 weights by these codes in int32 (vpdpwssd / vpmaddwd: no widening of
// each weight to f32) and convert once per block and row. Rounding: |x − scale·q| <= scale / 2 =
// 1/65534 of the block's max, far below the bf16 rounding a bf16 model's activations already carry;
// tests/unit/test_sparse_kernels.cpp checks the kernels against exactly that bound.
// Overflow: a block adds at most 256 / 16 = 16 products of |q_w| <= 127 and |q_x| <= 32767 per int32
// lane (< 2^26).
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

namespace tern::cpu {

inline constexpr int64_t kSparseX16Block = 256;

struct SparseX16 {
  int64_t k = 0, blocks = 0;
  std::vector<int16_t> q;  // [m, k]
  std::vector<float> d;    // [m, blocks]

  SparseX16(const float* x, int64_t m, int64_t cols)
      : k(cols), blocks((cols + kSparseX16Block - 1) / kSparseX16Block), q(size_t(m * cols)), d(size_t(m * blocks)) {
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

}  // namespace tern::cpu
