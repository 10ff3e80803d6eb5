// AVX2 pieces shared by the quantized-weight kernels (quant_avx2.cpp, quant_vnni.cpp): the blocked
// driver that turns a per-row micro-kernel into GEMV + cache-blocked GEMM, int4 unpacking, reductions.
// All `static inline` with function-level targets (ISA rules in DESIGN.md).
#pragma once

#include <immintrin.h>

#include <algorithm>
#include <cstdint>

#include "kernels/cpu/matmul_avx2_util.h"
#include "kernels/cpu/quant_kernels.h"

namespace tern::cpu {
namespace {

// Weight rows per block: 16 rows of k = 8192 int8 are 128 KiB, inside L2, while 4 rows of x pass.
constexpr int64_t kQuantRowBlock = 16;

// y[i0:i0+M, r] for every 4-row chunk of x and every weight row of a block; K<M>::run computes one
// (chunk, row) pair. Called from target-attributed kernels, so it is inlined into their ISA.
template <template <int> class K>
inline __attribute__((always_inline)) void quant_drive(const QuantActs& a, const WeightMatrix& w, float* y,
                                                       const float* bias, int64_t m0, int64_t m1, int64_t n0,
                                                       int64_t n1) {
  for (int64_t nb = n0; nb < n1; nb += kQuantRowBlock) {
    const int64_t ne = std::min(n1, nb + kQuantRowBlock);
    for (int64_t i = m0; i < m1; i += 4) {
      const int64_t mc = std::min<int64_t>(4, m1 - i);
      for (int64_t r = nb; r < ne; ++r) {
        switch (mc) {
          case 4: K<4>::run(a, w, y, bias, i, r); break;
          case 3: K<3>::run(a, w, y, bias, i, r); break;
          case 2: K<2>::run(a, w, y, bias, i, r); break;
          default: K<1>::run(a, w, y, bias, i, r); break;
        }
      }
    }
  }
}

// The VNNI kernels' targets: AVX-VNNI (VEX, 256-bit) and AVX-512 VNNI.
#define TERN_TARGET_AVXVNNI __attribute__((target("avx2,fma,f16c,avxvnni")))
#define TERN_TARGET_AVX512VNNI __attribute__((target("avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512dq,avx512vnni")))

TERN_TARGET_AVX2 inline int32_t avx2_hsum_i32(__m256i v) {
  __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
  s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0x4e));
  s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0xb1));
  return _mm_cvtsi128_si32(s);
}

// 32 int4 codes of one packed block (16 bytes: column j low nibble, j + 16 high nibble) in column order.
// [4] totals of four [8] int32 partial sums (s0..s3 -> lane 0..3): one transpose-and-add, no
// per-vector horizontal sum.
TERN_TARGET_AVX2 inline __m128i avx2_hsum4_i32(__m256i s0, __m256i s1, __m256i s2, __m256i s3) {
  const __m256i t01 = _mm256_add_epi32(_mm256_unpacklo_epi32(s0, s1), _mm256_unpackhi_epi32(s0, s1));
  const __m256i t23 = _mm256_add_epi32(_mm256_unpacklo_epi32(s2, s3), _mm256_unpackhi_epi32(s2, s3));
  const __m256i u = _mm256_add_epi32(_mm256_unpacklo_epi64(t01, t23), _mm256_unpackhi_epi64(t01, t23));
  return _mm_add_epi32(_mm256_castsi256_si128(u), _mm256_extracti128_si256(u, 1));
}

TERN_TARGET_AVX2 inline __m256i avx2_unpack_int4(const uint8_t* block) {
  const __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(block));
  const __m256i both = _mm256_set_m128i(_mm_srli_epi16(v, 4), v);
  return _mm256_and_si256(both, _mm256_set1_epi8(0x0f));
}

}  // namespace
}  // namespace tern::cpu
