// AVX2 row decoders of the paged KV cache (attention widens every gathered key/value row, so these
// run once per row per query group) and the INT8 encoder. Tails (d % 8) fall back to scalar math
// that gives the same values.
#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>

#include "core/dtype.h"
#include "kernels/cpu/kv_codec.h"
#include "kernels/cpu/vec_math.h"

namespace tern::cpu {

namespace {

// e4m3fn code → value: e == 0 is m·2^-9, else (8 + m)·2^(e - 10); 0x7f / 0xff are NaN.
constexpr std::array<float, 256> make_fp8_table() {
  std::array<float, 256> t{};
  for (int c = 0; c < 256; ++c) {
    const int e = (c >> 3) & 15, m = c & 7;
    float v = 0.f;
    if (e == 15 && m == 7) {
      v = std::numeric_limits<float>::quiet_NaN();
    } else {
      float p = 1.f / 512.f;                                 // 2^-9
      for (int i = 0; i < (e == 0 ? 0 : e - 1); ++i) p *= 2.f;  // 2^(e - 10) for e >= 1
      v = e == 0 ? float(m) * p : float(8 + m) * p;
    }
    t[size_t(c)] = (c & 0x80) ? -v : v;
  }
  return t;
}
constexpr std::array<float, 256> kFp8Table = make_fp8_table();

TERN_AVX2_TARGET void kv_decode_bf16_avx2(const void* src, float, int d, float* out) {
  const auto* s = static_cast<const uint16_t*>(src);
  int i = 0;
  for (; i + 8 <= d; i += 8) {
    const __m256i w = _mm256_cvtepu16_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(s + i)));
    _mm256_storeu_ps(out + i, _mm256_castsi256_ps(_mm256_slli_epi32(w, 16)));
  }
  for (; i < d; ++i) out[i] = bf16_to_f32(s[i]);
}

TERN_AVX2_TARGET void kv_decode_int8_avx2(const void* src, float scale, int d, float* out) {
  const auto* s = static_cast<const int8_t*>(src);
  const __m256 sv = _mm256_set1_ps(scale);
  int i = 0;
  for (; i + 8 <= d; i += 8) {
    int64_t raw;
    std::memcpy(&raw, s + i, 8);
    const __m256i w = _mm256_cvtepi8_epi32(_mm_cvtsi64_si128(raw));
    _mm256_storeu_ps(out + i, _mm256_mul_ps(_mm256_cvtepi32_ps(w), sv));
  }
  for (; i < d; ++i) out[i] = float(s[i]) * scale;
}

TERN_AVX2_TARGET void kv_decode_fp8_avx2(const void* src, float scale, int d, float* out) {
  const auto* s = static_cast<const uint8_t*>(src);
  const __m256 sv = _mm256_set1_ps(scale);
  int i = 0;
  for (; i + 8 <= d; i += 8) {
    int64_t raw;
    std::memcpy(&raw, s + i, 8);
    const __m256i idx = _mm256_cvtepu8_epi32(_mm_cvtsi64_si128(raw));
    _mm256_storeu_ps(out + i, _mm256_mul_ps(_mm256_i32gather_ps(kFp8Table.data(), idx, 4), sv));
  }
  for (; i < d; ++i) out[i] = kFp8Table[s[i]] * scale;
}

TERN_AVX2_TARGET void kv_encode_int8_avx2(const float* x, int d, void* dst, float* scale) {
  const __m256 abs_mask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff));
  __m256 mx = _mm256_setzero_ps();
  int i = 0;
  for (; i + 8 <= d; i += 8) mx = _mm256_max_ps(mx, _mm256_and_ps(_mm256_loadu_ps(x + i), abs_mask));
  float amax = hmax_avx2(mx);
  for (int j = i; j < d; ++j) amax = std::max(amax, std::fabs(x[j]));
  const float s = amax > 0 ? amax / 127.f : 1.f;
  const float inv = 1.f / s;
  auto* o = static_cast<int8_t*>(dst);
  const __m256 iv = _mm256_set1_ps(inv), lo = _mm256_set1_ps(-127.f), hi = _mm256_set1_ps(127.f);
  for (i = 0; i + 8 <= d; i += 8) {
    __m256 v = _mm256_round_ps(_mm256_mul_ps(_mm256_loadu_ps(x + i), iv), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    v = _mm256_min_ps(hi, _mm256_max_ps(lo, v));
    const __m256i q = _mm256_cvtps_epi32(v);
    const __m128i w16 = _mm_packs_epi32(_mm256_castsi256_si128(q), _mm256_extracti128_si256(q, 1));
    const __m128i w8 = _mm_packs_epi16(w16, w16);
    const int64_t raw = _mm_cvtsi128_si64(w8);
    std::memcpy(o + i, &raw, 8);
  }
  for (; i < d; ++i) o[i] = int8_t(std::clamp(std::nearbyint(x[i] * inv), -127.f, 127.f));
  *scale = s;
}

}  // namespace

KvAvx2Rows kv_avx2_rows() {
  return {kv_decode_bf16_avx2, kv_decode_int8_avx2, kv_decode_fp8_avx2, kv_encode_int8_avx2};
}

}  // namespace tern::cpu
