// AVX2 helpers shared by the GEMV and GEMM kernels: widen 8 stored weights to f32, reduce, pack
// GEMM weight panels (also used by the AVX-512 GEMM, whose target includes AVX2).
// Everything here is `static inline` with a function-level target so that no AVX2 code can be
// picked by the linker for a generic caller (see DESIGN.md / the ISA rules).
#pragma once

#include <immintrin.h>

#include <cstdint>

#include "core/dtype.h"
#include "core/weight_matrix.h"

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

// r[i][j] -> r[j][i] for an 8x8 block of 32-bit lanes.
TERN_TARGET_AVX2 inline void transpose8(__m256 r[8]) {
  const __m256 t0 = _mm256_unpacklo_ps(r[0], r[1]), t1 = _mm256_unpackhi_ps(r[0], r[1]);
  const __m256 t2 = _mm256_unpacklo_ps(r[2], r[3]), t3 = _mm256_unpackhi_ps(r[2], r[3]);
  const __m256 t4 = _mm256_unpacklo_ps(r[4], r[5]), t5 = _mm256_unpackhi_ps(r[4], r[5]);
  const __m256 t6 = _mm256_unpacklo_ps(r[6], r[7]), t7 = _mm256_unpackhi_ps(r[6], r[7]);
  const __m256 u0 = _mm256_shuffle_ps(t0, t2, 0x44), u1 = _mm256_shuffle_ps(t0, t2, 0xEE);
  const __m256 u2 = _mm256_shuffle_ps(t1, t3, 0x44), u3 = _mm256_shuffle_ps(t1, t3, 0xEE);
  const __m256 u4 = _mm256_shuffle_ps(t4, t6, 0x44), u5 = _mm256_shuffle_ps(t4, t6, 0xEE);
  const __m256 u6 = _mm256_shuffle_ps(t5, t7, 0x44), u7 = _mm256_shuffle_ps(t5, t7, 0xEE);
  r[0] = _mm256_permute2f128_ps(u0, u4, 0x20);
  r[1] = _mm256_permute2f128_ps(u1, u5, 0x20);
  r[2] = _mm256_permute2f128_ps(u2, u6, 0x20);
  r[3] = _mm256_permute2f128_ps(u3, u7, 0x20);
  r[4] = _mm256_permute2f128_ps(u0, u4, 0x31);
  r[5] = _mm256_permute2f128_ps(u1, u5, 0x31);
  r[6] = _mm256_permute2f128_ps(u2, u6, 0x31);
  r[7] = _mm256_permute2f128_ps(u3, u7, 0x31);
}

// A GEMM weight panel. dst: [kc][NR] f32 = w[c0 + col, kb + p] for col < cols, zero beyond (so edge
// tiles need no masks). Full panels go through 8x8 register transposes.
template <DType D, int kNR>
TERN_TARGET_AVX2 inline void pack_panel(const WeightMatrix& w, int64_t c0, int cols, int64_t kb, int64_t kc, float* dst) {
  int64_t p = 0;
  if (cols == kNR) {
    for (; p + 8 <= kc; p += 8) {
      for (int g = 0; g < kNR / 8; ++g) {
        __m256 r[8];
        for (int c = 0; c < 8; ++c) r[c] = avx2_load8<D>(w.row(c0 + g * 8 + c), kb + p);
        transpose8(r);  // r[q] = w[c0 + g*8 + 0..7, kb + p + q]
        for (int q = 0; q < 8; ++q) _mm256_store_ps(dst + (p + q) * kNR + g * 8, r[q]);
      }
    }
  }
  for (; p < kc; ++p)
    for (int c = 0; c < kNR; ++c)
      dst[p * kNR + c] = c < cols ? load_as_f32(w.row(c0 + c), D, size_t(kb + p)) : 0.f;
}

}  // namespace
}  // namespace tern::cpu
