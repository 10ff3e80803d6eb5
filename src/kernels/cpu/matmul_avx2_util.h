// AVX2 helpers shared by the AVX2 GEMV and GEMM kernels: widen 8 stored weights to f32, reduce.
// Everything here is `static inline` with a function-level target so that no AVX2 code can be
// picked by the linker for a generic caller (see DESIGN.md / the ISA rules).
#pragma once

#include <immintrin.h>

#include <cstdint>

#include "core/dtype.h"

#define TERN_TARGET_AVX2 __attribute__((target("avx2,fma,f16c")))

namespace tern::cpu {
namespace {

// 8 weights starting at element i of a row stored as D, widened to f32.
// bf16 -> f32 is exact: zero-extend to 32 bits and shift into the high half (vpmovzxwd + vpslld).
template <DType D>
TERN_TARGET_AVX2 inline __m256 avx2_load8(const void* row, int64_t i) {
  if constexpr (D == DType::F32) {
    return _mm256_loadu_ps(static_cast<const float*>(row) + i);
  } else {
    const __m128i h = _mm_loadu_si128(reinterpret_cast<const __m128i*>(static_cast<const uint16_t*>(row) + i));
    if constexpr (D == DType::BF16) {
      return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
    } else {
      return _mm256_cvtph_ps(h);
    }
  }
}

TERN_TARGET_AVX2 inline float avx2_hsum(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

}  // namespace
}  // namespace tern::cpu
