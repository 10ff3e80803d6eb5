// AVX2 pieces shared by the m = 1 GGUF decode kernels (gguf_gemv_m1_avx2.cpp for Q4_0 / Q8_0,
// gguf_gemv_m1_k_avx2.cpp for Q4_K / Q6_K): x's int8 codes, the f16 scale loads, the prefetch
// distance. Function-level targets (ISA rules in DESIGN.md); reductions come from quant_avx2_util.h.
#pragma once

#include <immintrin.h>

#include <cstdint>
#include <cstring>

#include "kernels/cpu/quant_avx2_util.h"

namespace tern::cpu {
namespace {

inline size_t gguf_m1_align64(size_t n) { return (n + 63) & ~size_t(63); }

// Bytes ahead of the current block each row stream is prefetched (5 cache lines).
constexpr int64_t kGgufM1PrefetchBytes = 320;

// [8] int32 codes of x[0:8]: round(clamp(x · inv, -127, 127)), nearest-even as lrintf.
TERN_TARGET_AVX2 inline __m256i gguf_m1_codes8(const float* x, __m256 inv) {
  const __m256 v = _mm256_mul_ps(_mm256_loadu_ps(x), inv);
  return _mm256_cvtps_epi32(_mm256_min_ps(_mm256_max_ps(v, _mm256_set1_ps(-127.0f)), _mm256_set1_ps(127.0f)));
}

// The little-endian 16 bits at p (an f16 scale), widened.
inline uint64_t gguf_m1_ld16(const uint8_t* p) {
  uint16_t h;
  std::memcpy(&h, p, 2);
  return h;
}

// [4] totals of four [4] int32 partial sums (s0..s3 -> lane 0..3), one transpose-and-add.
TERN_TARGET_AVX2 inline __m128i gguf_m1_hsum4_128(__m128i s0, __m128i s1, __m128i s2, __m128i s3) {
  const __m128i t01 = _mm_add_epi32(_mm_unpacklo_epi32(s0, s1), _mm_unpackhi_epi32(s0, s1));
  const __m128i t23 = _mm_add_epi32(_mm_unpacklo_epi32(s2, s3), _mm_unpackhi_epi32(s2, s3));
  return _mm_add_epi32(_mm_unpacklo_epi64(t01, t23), _mm_unpackhi_epi64(t01, t23));
}

}  // namespace
}  // namespace tern::cpu
