#include "kernels/cpu/f16_to_bf16.h"

#include <immintrin.h>

#include "core/dtype.h"

namespace tern::cpu {

void f16_to_bf16_scalar(const uint16_t* src, uint16_t* dst, size_t n) {
  for (size_t i = 0; i < n; ++i) dst[i] = f32_to_bf16(f16_to_f32(src[i]));
}

// 8 at a time: vcvtph2ps (exact), then the integer round-to-nearest-even of f32_to_bf16, NaN -> quiet.
__attribute__((target("avx2,fma,f16c"))) void f16_to_bf16_avx2(const uint16_t* src, uint16_t* dst, size_t n) {
  const __m256i one = _mm256_set1_epi32(1), bias = _mm256_set1_epi32(0x7fff), abs = _mm256_set1_epi32(0x7fffffff);
  const __m256i inf = _mm256_set1_epi32(0x7f800000), quiet = _mm256_set1_epi32(0x40);
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m256i u = _mm256_castps_si256(_mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(src + i))));
    const __m256i rounded =
        _mm256_srli_epi32(_mm256_add_epi32(u, _mm256_add_epi32(bias, _mm256_and_si256(_mm256_srli_epi32(u, 16), one))), 16);
    const __m256i nan = _mm256_cmpgt_epi32(_mm256_and_si256(u, abs), inf);
    const __m256i r = _mm256_blendv_epi8(rounded, _mm256_or_si256(_mm256_srli_epi32(u, 16), quiet), nan);
    // 8 x u32 (high halves zero) -> 8 x u16.
    const __m128i packed = _mm_packus_epi32(_mm256_castsi256_si128(r), _mm256_extracti128_si256(r, 1));
    _mm_storeu_si128(reinterpret_cast<__m128i*>(dst + i), packed);
  }
  f16_to_bf16_scalar(src + i, dst + i, n - i);
}

void f16_to_bf16(const CpuFeatures& cpu, const uint16_t* src, uint16_t* dst, size_t n) {
  if (cpu.avx2) return f16_to_bf16_avx2(src, dst, n);
  f16_to_bf16_scalar(src, dst, n);
}

}  // namespace tern::cpu
