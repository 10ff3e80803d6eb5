// AVX2 block decoders (ggml layouts, see gguf_blocks.h), included only by gguf_matmul_avx2.cpp so that
// they stay static and inline into its kernels. Each writes block_elems f32 values to a 32-byte-aligned
// buffer. Formats without one here (Q5_0, Q5_1, Q2_K, Q3_K) use the scalar reference decoder.
#pragma once

#include <immintrin.h>

#include <cstdint>
#include <cstring>

#include "kernels/cpu/gguf_blocks.h"

#define TERN_GGUF_AVX2 __attribute__((target("avx2,fma,f16c")))

namespace tern::cpu {
namespace {

TERN_GGUF_AVX2 inline float gguf_half_avx2(const uint8_t* p) {
  uint16_t h;
  std::memcpy(&h, p, 2);
  return _cvtsh_ss(h);
}

// 8 signed / unsigned bytes -> 8 floats.
TERN_GGUF_AVX2 inline __m256 i8x8_ps(__m128i v) { return _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(v)); }
TERN_GGUF_AVX2 inline __m256 u8x8_ps(__m128i v) { return _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(v)); }

// 16 byte codes -> 16 floats d*code + m.
TERN_GGUF_AVX2 inline void store16_u8(__m128i codes, __m256 d, __m256 m, float* y) {
  _mm256_store_ps(y, _mm256_fmadd_ps(u8x8_ps(codes), d, m));
  _mm256_store_ps(y + 8, _mm256_fmadd_ps(u8x8_ps(_mm_srli_si128(codes, 8)), d, m));
}
TERN_GGUF_AVX2 inline void store16_i8(__m128i codes, __m256 d, float* y) {
  _mm256_store_ps(y, _mm256_mul_ps(i8x8_ps(codes), d));
  _mm256_store_ps(y + 8, _mm256_mul_ps(i8x8_ps(_mm_srli_si128(codes, 8)), d));
}

TERN_GGUF_AVX2 void decode_q8_0_avx2(const uint8_t* b, float* y) {
  const __m256 d = _mm256_set1_ps(gguf_half_avx2(b));
  store16_i8(_mm_loadu_si128(reinterpret_cast<const __m128i*>(b + 2)), d, y);
  store16_i8(_mm_loadu_si128(reinterpret_cast<const __m128i*>(b + 18)), d, y + 16);
}

TERN_GGUF_AVX2 void decode_q4_0_avx2(const uint8_t* b, float* y) {
  const __m256 d = _mm256_set1_ps(gguf_half_avx2(b));
  const __m256 m = _mm256_set1_ps(-8.f * gguf_half_avx2(b));
  const __m128i q = _mm_loadu_si128(reinterpret_cast<const __m128i*>(b + 2));
  const __m128i mask = _mm_set1_epi8(0x0F);
  store16_u8(_mm_and_si128(q, mask), d, m, y);
  store16_u8(_mm_and_si128(_mm_srli_epi16(q, 4), mask), d, m, y + 16);
}

TERN_GGUF_AVX2 void decode_q4_1_avx2(const uint8_t* b, float* y) {
  const __m256 d = _mm256_set1_ps(gguf_half_avx2(b)), m = _mm256_set1_ps(gguf_half_avx2(b + 2));
  const __m128i q = _mm_loadu_si128(reinterpret_cast<const __m128i*>(b + 4));
  const __m128i mask = _mm_set1_epi8(0x0F);
  store16_u8(_mm_and_si128(q, mask), d, m, y);
  store16_u8(_mm_and_si128(_mm_srli_epi16(q, 4), mask), d, m, y + 16);
}

// Q4_K / Q5_K: chunk p of 64 values = 32 code bytes; low nibbles sub-block 2p, high nibbles 2p+1.
template <bool kFive>
TERN_GGUF_AVX2 void decode_q45_k_avx2(const uint8_t* b, float* y) {
  const float d = gguf_half_avx2(b), dmin = gguf_half_avx2(b + 2);
  const uint8_t* scales = b + 4;
  const uint8_t* qs = b + (kFive ? 48 : 16);
  const __m128i mask = _mm_set1_epi8(0x0F), one = _mm_set1_epi8(1);
  for (int p = 0; p < 4; ++p) {
    uint8_t s0, m0, s1, m1;
    gguf_ref::k4_scale_min(2 * p, scales, &s0, &m0);
    gguf_ref::k4_scale_min(2 * p + 1, scales, &s1, &m1);
    const __m256 d0 = _mm256_set1_ps(d * s0), n0 = _mm256_set1_ps(-dmin * m0);
    const __m256 d1 = _mm256_set1_ps(d * s1), n1 = _mm256_set1_ps(-dmin * m1);
    for (int h = 0; h < 2; ++h) {  // 16 code bytes at a time
      const __m128i q = _mm_loadu_si128(reinterpret_cast<const __m128i*>(qs + p * 32 + h * 16));
      __m128i lo = _mm_and_si128(q, mask), hi = _mm_and_si128(_mm_srli_epi16(q, 4), mask);
      if constexpr (kFive) {
        const __m128i qh = _mm_loadu_si128(reinterpret_cast<const __m128i*>(b + 16 + h * 16));
        lo = _mm_or_si128(lo, _mm_slli_epi16(_mm_and_si128(_mm_srli_epi16(qh, 2 * p), one), 4));
        hi = _mm_or_si128(hi, _mm_slli_epi16(_mm_and_si128(_mm_srli_epi16(qh, 2 * p + 1), one), 4));
      }
      store16_u8(lo, d0, n0, y + p * 64 + h * 16);
      store16_u8(hi, d1, n1, y + p * 64 + 32 + h * 16);
    }
  }
}

// Q6_K: see gguf_ref::dequant_q6_k for the bit positions; 16 values of each of the 4 rows at a time.
TERN_GGUF_AVX2 void decode_q6_k_avx2(const uint8_t* b, float* y) {
  const auto* sc = reinterpret_cast<const int8_t*>(b + 192);
  const float d = gguf_half_avx2(b + 208);
  const __m128i mask = _mm_set1_epi8(0x0F), three = _mm_set1_epi8(3), bias = _mm_set1_epi8(32);
  for (int h = 0; h < 2; ++h) {
    for (int c = 0; c < 2; ++c) {  // l in [16c, 16c + 16)
      const __m128i a = _mm_loadu_si128(reinterpret_cast<const __m128i*>(b + h * 64 + c * 16));
      const __m128i e = _mm_loadu_si128(reinterpret_cast<const __m128i*>(b + h * 64 + 32 + c * 16));
      const __m128i hb = _mm_loadu_si128(reinterpret_cast<const __m128i*>(b + 128 + h * 32 + c * 16));
      const __m128i q[4] = {
          _mm_or_si128(_mm_and_si128(a, mask), _mm_slli_epi16(_mm_and_si128(hb, three), 4)),
          _mm_or_si128(_mm_and_si128(e, mask), _mm_slli_epi16(_mm_and_si128(_mm_srli_epi16(hb, 2), three), 4)),
          _mm_or_si128(_mm_and_si128(_mm_srli_epi16(a, 4), mask),
                       _mm_slli_epi16(_mm_and_si128(_mm_srli_epi16(hb, 4), three), 4)),
          _mm_or_si128(_mm_and_si128(_mm_srli_epi16(e, 4), mask),
                       _mm_slli_epi16(_mm_and_si128(_mm_srli_epi16(hb, 6), three), 4))};
      for (int r = 0; r < 4; ++r) {
        const __m256 ds = _mm256_set1_ps(d * float(sc[h * 8 + 2 * r + c]));
        store16_i8(_mm_sub_epi8(q[r], bias), ds, y + h * 128 + r * 32 + c * 16);
      }
    }
  }
}

}  // namespace
}  // namespace tern::cpu
