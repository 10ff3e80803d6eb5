// AVX2 activation preparation for the integer-activation kernels: bit-identical to the scalar
// quant_acts_prepare (quant_ref.cpp), which it replaces on AVX2 hosts. It runs on one thread before
// every int4 / W8A8 matmul of a decode step (7 per layer), so the scalar loop, whose fmin / fmax are
// libm calls, cost as much as streaming 256 rows of int4 weights (~20 µs at k = 2048).
// Identity with the scalar code, element by element:
//   max|x|:   vmaxps(|x|, amax) keeps amax for a NaN x, as std::max(amax, |x|) does;
//   x·inv:    the same single IEEE multiply;
//   clamp:    vmaxps(v, -127) returns -127 for a NaN v, as fmax(v, -127) does; then vminps(·, 127);
//   rounding: vcvtps2dq in the default (nearest-even) mode = the scalar ±1.5·2^23 trick;
//   Σ xq and d · Σ xq: exact int32 sums, the same float product.
// W8A16's int16 x: the same steps with ±32767; vpackssdw never saturates after the clamp.
#include <algorithm>
#include <cmath>

#include "kernels/cpu/quant_avx2_util.h"

namespace tern::cpu {

namespace {

size_t align64(size_t n) { return (n + 63) & ~size_t(63); }

// [8] int32 codes of x[0:8]: round(clamp(x · inv, -127, 127)).
TERN_TARGET_AVX2 inline __m256i codes8(const float* x, __m256 inv) {
  const __m256 v = _mm256_mul_ps(_mm256_loadu_ps(x), inv);
  return _mm256_cvtps_epi32(_mm256_min_ps(_mm256_max_ps(v, _mm256_set1_ps(-127.0f)), _mm256_set1_ps(127.0f)));
}

// xq[0:n] = round(clamp(x / d)), d = max|x| / 127; returns d and writes Σ xq (scalar tail for n % 32).
TERN_TARGET_AVX2 float quantize_run(const float* x, int64_t n, int8_t* xq, int32_t* sum) {
  const __m256 abs_mask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff));
  __m256 vmax = _mm256_setzero_ps();
  int64_t j = 0;
  for (; j + 8 <= n; j += 8) vmax = _mm256_max_ps(_mm256_and_ps(_mm256_loadu_ps(x + j), abs_mask), vmax);
  float lanes[8];
  _mm256_storeu_ps(lanes, vmax);
  float amax = 0;
  for (float v : lanes) amax = std::max(amax, v);
  for (int64_t t = j; t < n; ++t) amax = std::max(amax, std::fabs(x[t]));
  const float d = amax / 127.0f;
  const float inv = d > 0 ? 1.0f / d : 0.0f;
  const __m256 vinv = _mm256_set1_ps(inv);
  __m256i vsum = _mm256_setzero_si256();
  j = 0;
  for (; j + 32 <= n; j += 32) {
    const __m256i a = codes8(x + j, vinv), b = codes8(x + j + 8, vinv), c = codes8(x + j + 16, vinv),
                  e = codes8(x + j + 24, vinv);
    vsum = _mm256_add_epi32(vsum, _mm256_add_epi32(_mm256_add_epi32(a, b), _mm256_add_epi32(c, e)));
    // packs interleave the 128-bit lanes: [a0-3 b0-3 c0-3 e0-3 | a4-7 b4-7 c4-7 e4-7] -> column order.
    const __m256i p = _mm256_packs_epi16(_mm256_packs_epi32(a, b), _mm256_packs_epi32(c, e));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(xq + j),
                        _mm256_permutevar8x32_epi32(p, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7)));
  }
  int32_t s = avx2_hsum_i32(vsum);
  constexpr float kMagic = 12582912.0f;  // the scalar reference's rounding, for the tail
  for (; j < n; ++j) {
    const float v = std::fmin(std::fmax(x[j] * inv, -127.0f), 127.0f);
    xq[j] = int8_t(int((v + kMagic) - kMagic));
    s += xq[j];
  }
  *sum = s;
  return d;
}

// x16[0:n] = round(clamp(x / d, ±32767)), d = max|x| / 32767; returns d (quantize_run16 in quant_ref.cpp).
TERN_TARGET_AVX2 float quantize_run16(const float* x, int64_t n, int16_t* x16) {
  const __m256 abs_mask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff));
  __m256 vmax = _mm256_setzero_ps();
  int64_t j = 0;
  for (; j + 8 <= n; j += 8) vmax = _mm256_max_ps(_mm256_and_ps(_mm256_loadu_ps(x + j), abs_mask), vmax);
  float lanes[8];
  _mm256_storeu_ps(lanes, vmax);
  float amax = 0;
  for (float v : lanes) amax = std::max(amax, v);
  for (int64_t t = j; t < n; ++t) amax = std::max(amax, std::fabs(x[t]));
  const float d = amax / 32767.0f;
  const float inv = d > 0 ? 1.0f / d : 0.0f;
  const __m256 vinv = _mm256_set1_ps(inv), lo = _mm256_set1_ps(-32767.0f), hi = _mm256_set1_ps(32767.0f);
  j = 0;
  for (; j + 16 <= n; j += 16) {
    const __m256i a = _mm256_cvtps_epi32(_mm256_min_ps(_mm256_max_ps(_mm256_mul_ps(_mm256_loadu_ps(x + j), vinv), lo), hi));
    const __m256i b =
        _mm256_cvtps_epi32(_mm256_min_ps(_mm256_max_ps(_mm256_mul_ps(_mm256_loadu_ps(x + j + 8), vinv), lo), hi));
    // packs interleaves the 128-bit lanes: [a0-3 b0-3 | a4-7 b4-7] -> quadwords 0, 2, 1, 3.
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(x16 + j), _mm256_permute4x64_epi64(_mm256_packs_epi32(a, b), 0xd8));
  }
  constexpr float kMagic = 12582912.0f;
  for (; j < n; ++j) {
    const float v = std::fmin(std::fmax(x[j] * inv, -32767.0f), 32767.0f);
    x16[j] = int16_t(int((v + kMagic) - kMagic));
  }
  return d;
}

}  // namespace

TERN_TARGET_AVX2 QuantActs quant_acts_prepare_avx2(const WeightMatrix& w, const float* x, int64_t m, void* scratch) {
  QuantActs a;
  a.x = x, a.m = m;
  if (quant_acts_bytes(w, m) == 0) return a;
  const int64_t k = w.cols;
  if (w.format == WeightFormat::Int8Channel && !w.int8_activations) {
    // W8A16 decode, scratch as quant_acts_prepare: x16 [m, k], xd16 [m, nb].
    const int64_t nb = (k + kX16Block - 1) / kX16Block;
    auto* x16 = static_cast<int16_t*>(scratch);
    auto* xd16 = reinterpret_cast<float*>(static_cast<char*>(scratch) + align64(size_t(m * k) * sizeof(int16_t)));
    for (int64_t i = 0; i < m; ++i)
      for (int64_t b = 0; b < nb; ++b) {
        const int64_t j0 = b * kX16Block;
        xd16[i * nb + b] = quantize_run16(x + i * k + j0, std::min(kX16Block, k - j0), x16 + i * k + j0);
      }
    a.x16 = x16, a.xd16 = xd16;
    return a;
  }
  // Scratch layout as quant_acts_prepare: xq [m, k], xd [m, ng], xs [m, ng], xq_pairs [m, k].
  const int64_t gs = w.format == WeightFormat::Int4Group ? w.group : k, ng = k / gs;
  char* p = static_cast<char*>(scratch);
  int8_t* xq = reinterpret_cast<int8_t*>(p);
  float* xd = reinterpret_cast<float*>(p + align64(size_t(m * k)));
  float* xs = reinterpret_cast<float*>(p + align64(size_t(m * k)) + align64(size_t(m * ng) * sizeof(float)));
  for (int64_t i = 0; i < m; ++i)
    for (int64_t g = 0; g < ng; ++g) {
      int32_t sum = 0;
      const float d = quantize_run(x + i * k + g * gs, gs, xq + i * k + g * gs, &sum);
      xd[i * ng + g] = d;
      xs[i * ng + g] = d * float(sum);
    }
  a.xq = xq, a.xd = xd, a.xs = xs;
  if (w.format == WeightFormat::Int4Group && gs % 64 == 0) {
    // Each 64-column chunk as columns 0-15, 32-47, 16-31, 48-63 (quant_kernels.h).
    int8_t* xp = reinterpret_cast<int8_t*>(p + align64(size_t(m * k)) + 2 * align64(size_t(m * ng) * sizeof(float)));
    for (int64_t c = 0; c < m * k; c += 64) {
      const __m256i a0 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(xq + c));
      const __m256i a1 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(xq + c + 32));
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(xp + c), _mm256_permute2x128_si256(a0, a1, 0x20));
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(xp + c + 32), _mm256_permute2x128_si256(a0, a1, 0x31));
    }
    a.xq_pairs = xp;
  }
  return a;
}

}  // namespace tern::cpu
