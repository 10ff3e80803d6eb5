// Packing shared by the BF16-dot GEMMs (vdpbf16ps in matmul_gemm_avx512bf16.cpp, tdpbf16ps in
// matmul_gemm_amx.cpp). Both multiply pairs of k: one 32-bit lane holds (v[2q], v[2q+1]) as two bf16.
//   B panel (weights, bf16, used in place apart from this tile copy): dst[q][c] = (w[c0+c][kb+2q], w[c0+c][kb+2q+1]),
//     q < kq (pairs, zero-padded), c < 32 (zero-padded past `cols`). A bf16 row of w read as 32-bit words
//     is already pair-interleaved, so packing is just a 32-bit transpose.
//   A tile (x rounded to bf16 here, round-to-nearest-even): dst[i][q] = (x[i][kb+2q], x[i][kb+2q+1]).
#pragma once

#include <immintrin.h>

#include <cstdint>
#include <cstring>

#include "kernels/cpu/matmul_avx2_util.h"
#include "core/weight_matrix.h"

#define TERN_TARGET_AVX512BF16 \
  __attribute__((target("avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512dq,avx512bf16")))

namespace tern::cpu {
namespace {

constexpr int kPairPanel = 32;  // columns per packed B panel

inline uint32_t bf16_pair(uint16_t lo, uint16_t hi) { return uint32_t(lo) | (uint32_t(hi) << 16); }

// w rows c0..c0+cols, inputs kb..kb+kc (bf16) -> dst: [kq][32] u32, kq >= ceil(kc / 2).
TERN_TARGET_AVX512BF16 inline void pack_b_pairs(const WeightMatrix& w, int64_t c0, int cols, int64_t kb, int64_t kc,
                                                int64_t kq, uint32_t* dst) {
  const int64_t full_pairs = kc / 2;
  int64_t q = 0;
  if (cols == kPairPanel) {
    for (; q + 8 <= full_pairs; q += 8) {
      for (int g = 0; g < kPairPanel / 8; ++g) {
        __m256 r[8];
        for (int c = 0; c < 8; ++c)
          r[c] = _mm256_loadu_ps(reinterpret_cast<const float*>(static_cast<const uint16_t*>(w.row(c0 + g * 8 + c)) +
                                                                kb + 2 * q));
        transpose8(r);  // bit patterns only: r[t] = pairs q+t of columns g*8..g*8+7
        for (int t = 0; t < 8; ++t) _mm256_store_ps(reinterpret_cast<float*>(dst + (q + t) * kPairPanel + g * 8), r[t]);
      }
    }
  }
  for (; q < kq; ++q) {
    for (int c = 0; c < kPairPanel; ++c) {
      uint16_t lo = 0, hi = 0;
      if (c < cols) {
        const uint16_t* row = static_cast<const uint16_t*>(w.row(c0 + c)) + kb;
        if (2 * q < kc) lo = row[2 * q];
        if (2 * q + 1 < kc) hi = row[2 * q + 1];
      }
      dst[q * kPairPanel + c] = bf16_pair(lo, hi);
    }
  }
}

// x rows [0, rows) (row stride ldx), inputs kb..kb+kc -> dst: [rows_padded][kq] u32; rows past `rows`
// and pairs past kc are zero.
TERN_TARGET_AVX512BF16 inline void pack_a_bf16(const float* x, int64_t ldx, int rows, int rows_padded, int64_t kb,
                                               int64_t kc, int64_t kq, uint32_t* dst) {
  for (int i = 0; i < rows_padded; ++i) {
    uint32_t* d = dst + i * kq;
    if (i >= rows) {
      std::memset(d, 0, size_t(kq) * 4);
      continue;
    }
    const float* xi = x + i * ldx + kb;
    int64_t q = 0;
    for (; 2 * q + 32 <= kc; q += 16) {
      // cvtne2ps: low 16 bf16 from the second operand, high 16 from the first.
      const __m512bh h = _mm512_cvtne2ps_pbh(_mm512_loadu_ps(xi + 2 * q + 16), _mm512_loadu_ps(xi + 2 * q));
      std::memcpy(d + q, &h, 64);
    }
    for (; q < kq; ++q) {
      const uint16_t lo = 2 * q < kc ? f32_to_bf16(xi[2 * q]) : 0;
      const uint16_t hi = 2 * q + 1 < kc ? f32_to_bf16(xi[2 * q + 1]) : 0;
      d[q] = bf16_pair(lo, hi);
    }
  }
}

}  // namespace
}  // namespace tern::cpu
