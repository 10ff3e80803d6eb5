// AVX-512 helpers shared by the AVX-512 GEMV and GEMM kernels (all `static inline`, function-level target).
#pragma once

// GCC 12's AVX-512 intrinsics build on an "undefined" vector (`__m512 __Y = __Y;`) that its
// (maybe-)uninitialized analysis reports once inlined into our kernels; the code is fine.
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"

#include <immintrin.h>

#include <cstdint>

#include "core/dtype.h"

#define TERN_TARGET_AVX512 __attribute__((target("avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512dq")))

namespace tern::cpu {
namespace {

// 16 weights starting at element i of a row stored as D, widened to f32 (bf16: zero-extend + shift).
template <DType D>
TERN_TARGET_AVX512 inline __m512 avx512_load16(const void* row, int64_t i) {
  if constexpr (D == DType::F32) {
    return _mm512_loadu_ps(static_cast<const float*>(row) + i);
  } else {
    const __m256i h = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(static_cast<const uint16_t*>(row) + i));
    if constexpr (D == DType::BF16) {
      return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
    } else {
      return _mm512_cvtph_ps(h);
    }
  }
}

// Horizontal sum. Not _mm512_reduce_add_ps / lane shuffles: GCC 12 builds those on an
// "undefined" vector that trips -Wuninitialized. Once per output, so a spill costs nothing.
TERN_TARGET_AVX512 inline float avx512_hsum(__m512 v) {
  alignas(64) float t[16];
  _mm512_store_ps(t, v);
  const __m256 h = _mm256_add_ps(_mm256_load_ps(t), _mm256_load_ps(t + 8));
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(h), _mm256_extractf128_ps(h, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

}  // namespace
}  // namespace tern::cpu
