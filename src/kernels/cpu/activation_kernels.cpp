// SwiGLU kernels: out = silu(g) * u with silu(g) = g / (1 + exp(-g)), the same fp32 operations
// torch's SiLU uses (its exp is Sleef's 1-ulp expf; ours is vec_math.h's ~1-ulp exp).
#include <cmath>

#include "kernels/cpu/pointwise_kernels.h"
#include "kernels/cpu/vec_math.h"

namespace tern::cpu {

void swiglu_scalar(const float* gate, const float* up, int64_t n, float* out) {
  for (int64_t i = 0; i < n; ++i) {
    const float g = gate[i];
    out[i] = g / (1.f + std::exp(-g)) * up[i];
  }
}

namespace {

// torch's GeluKernel with approximate="tanh", in the same fp32 operation order:
//   inner = kBeta · (x + kKappa · x³), y = 0.5 · x · (1 + tanh(inner)), kBeta = √2 · (2/√π) · 0.5.
inline float gelu_tanh_one(float x) {
  constexpr float kBeta = float(M_SQRT2 * M_2_SQRTPI * 0.5);
  constexpr float kKappa = 0.044715f;
  const float cube = x * x * x;
  const float inner = kBeta * (x + kKappa * cube);
  return 0.5f * x * (1.f + std::tanh(inner));
}

}  // namespace

void geglu_tanh_scalar(const float* gate, const float* up, int64_t n, float* out) {
  for (int64_t i = 0; i < n; ++i) out[i] = gelu_tanh_one(gate[i]) * up[i];
}

void gelu_tanh_scalar(const float* x, int64_t n, float* out) {
  for (int64_t i = 0; i < n; ++i) out[i] = gelu_tanh_one(x[i]);
}

TERN_AVX2_TARGET void swiglu_avx2(const float* gate, const float* up, int64_t n, float* out) {
  const __m256 one = _mm256_set1_ps(1.f), neg = _mm256_set1_ps(-0.f);
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m256 g = _mm256_loadu_ps(gate + i);
    const __m256 e = exp_avx2(_mm256_xor_ps(g, neg));
    const __m256 s = _mm256_div_ps(g, _mm256_add_ps(one, e));
    _mm256_storeu_ps(out + i, _mm256_mul_ps(s, _mm256_loadu_ps(up + i)));
  }
  if (i < n) swiglu_scalar(gate + i, up + i, n - i, out + i);
}

TERN_AVX512_TARGET void swiglu_avx512(const float* gate, const float* up, int64_t n, float* out) {
  const __m512 one = _mm512_set1_ps(1.f), neg = _mm512_set1_ps(-0.f);
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    const __m512 g = _mm512_loadu_ps(gate + i);
    const __m512 e = exp_avx512(_mm512_xor_ps(g, neg));
    const __m512 s = _mm512_div_ps(g, _mm512_add_ps(one, e));
    _mm512_storeu_ps(out + i, _mm512_mul_ps(s, _mm512_loadu_ps(up + i)));
  }
  if (i < n) swiglu_scalar(gate + i, up + i, n - i, out + i);
}

TERN_AVX2_TARGET void exp_avx2_array(const float* x, int64_t n, float* out) {
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) _mm256_storeu_ps(out + i, exp_avx2(_mm256_loadu_ps(x + i)));
  for (; i < n; ++i) out[i] = std::exp(x[i]);
}

TERN_AVX512_TARGET void exp_avx512_array(const float* x, int64_t n, float* out) {
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) _mm512_storeu_ps(out + i, exp_avx512(_mm512_loadu_ps(x + i)));
  for (; i < n; ++i) out[i] = std::exp(x[i]);
}

}  // namespace tern::cpu
