// RMSNorm kernels. Transformers computes variance = mean(x²) in fp32 and then
// x * rsqrt(variance + eps) * weight. We sum the squares in double (exact squares, one rounding per
// add) and round the mean to float once, which is at least as accurate as torch's fp32 reduction;
// the remaining steps use the same fp32 operations in the same order:
//   r = 1 / sqrt(float(mean) + eps);  out = weight * (x * r).
#include <cmath>

#include "kernels/cpu/pointwise_kernels.h"
#include "kernels/cpu/vec_math.h"

namespace tern::cpu {

namespace {

inline float inv_rms(double sum_sq, int64_t d, float eps) {
  const float var = float(sum_sq / double(d));
  return 1.f / std::sqrt(var + eps);
}

}  // namespace

void rms_norm_scalar(float* x, const float* residual, int64_t m, int64_t d, const float* weight, float eps,
                     float* out) {
  for (int64_t i = 0; i < m; ++i) {
    float* xr = x + i * d;
    float* yr = out + i * d;
    if (residual) {
      const float* rr = residual + i * d;
      for (int64_t j = 0; j < d; ++j) xr[j] += rr[j];
    }
    double ss = 0;
    for (int64_t j = 0; j < d; ++j) ss += double(xr[j]) * double(xr[j]);
    const float r = inv_rms(ss, d, eps);
    for (int64_t j = 0; j < d; ++j) yr[j] = weight[j] * (xr[j] * r);
  }
}

TERN_AVX2_TARGET void rms_norm_avx2(float* x, const float* residual, int64_t m, int64_t d, const float* weight,
                                    float eps, float* out) {
  const int64_t d8 = d & ~int64_t(7);
  for (int64_t i = 0; i < m; ++i) {
    float* xr = x + i * d;
    float* yr = out + i * d;
    if (residual) {
      const float* rr = residual + i * d;
      for (int64_t j = 0; j < d8; j += 8)
        _mm256_storeu_ps(xr + j, _mm256_add_ps(_mm256_loadu_ps(xr + j), _mm256_loadu_ps(rr + j)));
      for (int64_t j = d8; j < d; ++j) xr[j] += rr[j];
    }
    // Two double accumulators per 8 floats (low / high 4 lanes).
    __m256d acc0 = _mm256_setzero_pd(), acc1 = _mm256_setzero_pd();
    for (int64_t j = 0; j < d8; j += 8) {
      const __m256 v = _mm256_loadu_ps(xr + j);
      const __m256d lo = _mm256_cvtps_pd(_mm256_castps256_ps128(v));
      const __m256d hi = _mm256_cvtps_pd(_mm256_extractf128_ps(v, 1));
      acc0 = _mm256_fmadd_pd(lo, lo, acc0);
      acc1 = _mm256_fmadd_pd(hi, hi, acc1);
    }
    alignas(32) double lanes[4];
    _mm256_store_pd(lanes, _mm256_add_pd(acc0, acc1));
    double ss = (lanes[0] + lanes[1]) + (lanes[2] + lanes[3]);
    for (int64_t j = d8; j < d; ++j) ss += double(xr[j]) * double(xr[j]);
    const float r = inv_rms(ss, d, eps);
    const __m256 rv = _mm256_set1_ps(r);
    for (int64_t j = 0; j < d8; j += 8) {
      const __m256 xn = _mm256_mul_ps(_mm256_loadu_ps(xr + j), rv);
      _mm256_storeu_ps(yr + j, _mm256_mul_ps(_mm256_loadu_ps(weight + j), xn));
    }
    for (int64_t j = d8; j < d; ++j) yr[j] = weight[j] * (xr[j] * r);
  }
}

// LayerNorm: mean and variance summed in double and rounded to float once (torch reduces in fp32;
// ours is at least as accurate), then torch's order: y = (x·rstd + (-rstd·mean))·w + b.
void layer_norm_scalar(float* x, const float* residual, int64_t m, int64_t d, const float* weight, const float* bias,
                       float eps, float* out) {
  for (int64_t i = 0; i < m; ++i) {
    float* xr = x + i * d;
    float* yr = out + i * d;
    if (residual) {
      const float* rr = residual + i * d;
      for (int64_t j = 0; j < d; ++j) xr[j] += rr[j];
    }
    double s = 0;
    for (int64_t j = 0; j < d; ++j) s += double(xr[j]);
    const double mean_d = s / double(d);
    double ss = 0;
    for (int64_t j = 0; j < d; ++j) ss += (double(xr[j]) - mean_d) * (double(xr[j]) - mean_d);
    const float mean = float(mean_d), var = float(ss / double(d));
    const float rstd = 1.f / std::sqrt(var + eps);
    const float shift = -rstd * mean;
    for (int64_t j = 0; j < d; ++j) {
      const float v = (xr[j] * rstd + shift) * weight[j];
      yr[j] = bias ? v + bias[j] : v;
    }
  }
}

}  // namespace tern::cpu
