// RoPE kernels (Hugging Face rotate_half layout). Per token, the angle of pair j is
// float(inv_freq[j]) * float(pos) rounded to fp32 exactly as torch's fp32 matmul of a K=1 product;
// cos/sin of that fp32 angle are evaluated in double and rounded once (≤ 0.5 ulp, torch's Sleef
// cos/sin are ≤ 1 ulp). Then, for j < half (half = rotary_dim / 2):
//   x'[j] = x[j]·cos - x[j+half]·sin,   x'[j+half] = x[j+half]·cos + x[j]·sin
// with separate multiplies and add (no FMA), like torch's (q * cos) + (rotate_half(q) * sin).
// Elements at or beyond rotary_dim (partial rotary) are left unchanged. The interleaved layout
// (GLM-4) pairs x[2j] with x[2j+1] at the same angle, with the same fp32 operations.
#include <cmath>

#include "kernels/cpu/pointwise_kernels.h"
#include "kernels/cpu/vec_math.h"

namespace tern::cpu {

namespace {

// cos_sin: [2, half] = cos row then sin row for one position.
void fill_cos_sin(int32_t pos, const float* inv_freq, int half, float* cos_sin) {
  const float p = float(pos);
  for (int j = 0; j < half; ++j) {
    const float angle = inv_freq[j] * p;
    cos_sin[j] = float(std::cos(double(angle)));
    cos_sin[half + j] = float(std::sin(double(angle)));
  }
}

inline void rotate_scalar(float* xh, const float* c, const float* s, int from, int half) {
  for (int j = from; j < half; ++j) {
    const float a = xh[j], b = xh[j + half];
    const float ac = a * c[j], bs = b * s[j];
    const float bc = b * c[j], as = a * s[j];
    xh[j] = ac - bs;
    xh[j + half] = bc + as;
  }
}

}  // namespace

void rope_scalar(float* x, int64_t m, int n_heads, int head_dim, const int32_t* positions, const float* inv_freq,
                 int half, float* cos_sin) {
  for (int64_t i = 0; i < m; ++i) {
    fill_cos_sin(positions[i], inv_freq, half, cos_sin);
    for (int h = 0; h < n_heads; ++h)
      rotate_scalar(x + (i * n_heads + h) * head_dim, cos_sin, cos_sin + half, 0, half);
  }
}

TERN_AVX2_TARGET void rope_avx2(float* x, int64_t m, int n_heads, int head_dim, const int32_t* positions,
                                const float* inv_freq, int half, float* cos_sin) {
  const int half8 = half & ~7;
  for (int64_t i = 0; i < m; ++i) {
    fill_cos_sin(positions[i], inv_freq, half, cos_sin);
    const float* c = cos_sin;
    const float* s = cos_sin + half;
    for (int h = 0; h < n_heads; ++h) {
      float* xh = x + (i * n_heads + h) * head_dim;
      for (int j = 0; j < half8; j += 8) {
        const __m256 a = _mm256_loadu_ps(xh + j), b = _mm256_loadu_ps(xh + j + half);
        const __m256 cv = _mm256_loadu_ps(c + j), sv = _mm256_loadu_ps(s + j);
        __m256 ac = _mm256_mul_ps(a, cv), bs = _mm256_mul_ps(b, sv);
        __m256 bc = _mm256_mul_ps(b, cv), as = _mm256_mul_ps(a, sv);
        // GCC contracts mul + add into FMA in an fma-target function; the empty asm pins each
        // product to a rounded register value so results equal the scalar (and torch) ones.
        asm("" : "+x"(ac), "+x"(bs), "+x"(bc), "+x"(as));
        _mm256_storeu_ps(xh + j, _mm256_sub_ps(ac, bs));
        _mm256_storeu_ps(xh + j + half, _mm256_add_ps(bc, as));
      }
      rotate_scalar(xh, c, s, half8, half);
    }
  }
}

void rope_interleaved_scalar(float* x, int64_t m, int n_heads, int head_dim, const int32_t* positions,
                             const float* inv_freq, int half, float* cos_sin) {
  for (int64_t i = 0; i < m; ++i) {
    fill_cos_sin(positions[i], inv_freq, half, cos_sin);
    const float* c = cos_sin;
    const float* s = cos_sin + half;
    for (int h = 0; h < n_heads; ++h) {
      float* xh = x + (i * n_heads + h) * head_dim;
      for (int j = 0; j < half; ++j) {
        const float a = xh[2 * j], b = xh[2 * j + 1];
        const float ac = a * c[j], bs = b * s[j];
        const float bc = b * c[j], as = a * s[j];
        xh[2 * j] = ac - bs;
        xh[2 * j + 1] = bc + as;
      }
    }
  }
}

}  // namespace tern::cpu
