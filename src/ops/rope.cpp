// RoPE front door: inv_freq exactly as transformers' modeling_rope_utils computes it (fp32 tensor
// arithmetic emulated step by step), and the in-place rotation dispatched by ISA and split over
// tokens.
#include "ops/rope.h"

#include <cassert>
#include <algorithm>
#include <cmath>
#include <numbers>

#include "kernels/cpu/pointwise_kernels.h"

namespace tern {

namespace {

// _compute_default_rope_parameters:
//   inv_freq = 1.0 / (base ** (arange(0, dim, 2).float() / dim))
// Every step is an fp32 tensor op: the exponent is an fp32 division, pow runs in fp32 (Sleef,
// ≤ 1 ulp; we use the correctly rounded value: double pow rounded once), and `1.0 / t` is torch's
// reciprocal, an exact fp32 division.
float pos_freq(double theta, int dim, int i) {
  const float exponent = float(2 * i) / float(dim);
  return float(std::pow(double(float(theta)), double(exponent)));
}

std::vector<float> default_inv_freq(double theta, int dim) {
  std::vector<float> inv(size_t(dim / 2));
  for (int i = 0; i < dim / 2; ++i) inv[size_t(i)] = 1.f / pos_freq(theta, dim, i);
  return inv;
}

// _compute_llama3_parameters, in the same fp32 operation order. Python scalars become fp32 when
// they meet an fp32 tensor; `s / t` is t.reciprocal() * s (Tensor.__rtruediv__).
void apply_llama3(const RopeConfig& cfg, std::vector<float>& inv) {
  const double old_ctx = cfg.llama3_original_max_position;
  const double low = cfg.llama3_low_freq_factor, high = cfg.llama3_high_freq_factor;
  const float factor = float(cfg.llama3_factor);
  const float low_freq_wavelen = float(old_ctx / low);
  const float high_freq_wavelen = float(old_ctx / high);
  const float two_pi = float(2.0 * std::numbers::pi);
  for (float& f : inv) {
    const float wavelen = (1.f / f) * two_pi;
    const float scaled = wavelen > low_freq_wavelen ? f / factor : f;  // inv_freq_llama
    const float smooth = ((1.f / wavelen) * float(old_ctx) - float(low)) / float(high - low);
    const float smoothed = (1.f - smooth) * scaled / factor + smooth * scaled;
    const bool medium = !(wavelen < high_freq_wavelen) && !(wavelen > low_freq_wavelen);
    f = medium ? smoothed : scaled;
  }
}

// _compute_yarn_parameters, fp32 where transformers computes on tensors, double where it computes
// on Python floats (the correction range):
//   pos_freqs = base ** (arange(0, dim, 2).float() / dim)
//   extrapolation = 1 / pos_freqs;  interpolation = 1 / (factor * pos_freqs)
//   low, high = correction range of beta_fast, beta_slow rotations (floored / ceiled, clipped to [0, dim-1])
//   ramp[i] = clamp((i - low) / (high - low), 0, 1);  extrapolation_factor = 1 - ramp
//   inv = interpolation * (1 - extrapolation_factor) + extrapolation * extrapolation_factor
void apply_yarn(const RopeConfig& cfg, std::vector<float>& inv) {
  const int dim = cfg.rotary_dim;
  const double base = cfg.theta;
  const double orig = cfg.yarn_original_max_position;
  auto correction_dim = [&](double rotations) {
    return (dim * std::log(orig / (rotations * 2.0 * std::numbers::pi))) / (2.0 * std::log(base));
  };
  double low = correction_dim(cfg.yarn_beta_fast), high = correction_dim(cfg.yarn_beta_slow);
  if (cfg.yarn_truncate) {
    low = std::floor(low);
    high = std::ceil(high);
  }
  low = std::max(low, 0.0);
  high = std::min(high, double(dim - 1));
  if (low == high) high += 0.001;  // transformers' guard against a zero-width ramp
  const float lo = float(low), span = float(high) - float(low);
  const float factor = float(cfg.yarn_factor);
  for (size_t i = 0; i < inv.size(); ++i) {
    const float p = pos_freq(base, dim, int(i));
    const float extrapolation = 1.f / p;
    const float interpolation = 1.f / (factor * p);
    const float ramp = std::clamp((float(i) - lo) / span, 0.f, 1.f);
    const float extrapolation_factor = 1.f - ramp;
    inv[i] = interpolation * (1.f - extrapolation_factor) + extrapolation * extrapolation_factor;
  }
}

}  // namespace

double yarn_get_mscale(double scale, double mscale) {
  return scale <= 1.0 ? 1.0 : 0.1 * mscale * std::log(scale) + 1.0;
}

double rope_attention_factor(const RopeConfig& cfg) {
  if (cfg.yarn_factor <= 0) return 1.0;
  if (cfg.yarn_attention_factor > 0) return cfg.yarn_attention_factor;
  if (cfg.yarn_mscale > 0 && cfg.yarn_mscale_all_dim > 0) {
    return yarn_get_mscale(cfg.yarn_factor, cfg.yarn_mscale) / yarn_get_mscale(cfg.yarn_factor, cfg.yarn_mscale_all_dim);
  }
  return yarn_get_mscale(cfg.yarn_factor);
}

std::vector<float> rope_inv_freq(const RopeConfig& cfg) {
  std::vector<float> inv = default_inv_freq(cfg.theta, cfg.rotary_dim);
  if (cfg.llama3_factor > 0) apply_llama3(cfg, inv);
  if (cfg.yarn_factor > 0) apply_yarn(cfg, inv);
  // _compute_linear_scaling_rope_parameters: inv_freq /= factor (fp32 division).
  if (cfg.linear_factor != 1.0) {
    const float factor = float(cfg.linear_factor);
    for (float& f : inv) f /= factor;
  }
  return inv;
}

void rope_apply(ExecContext& ctx, float* x, int64_t m, int n_heads, int head_dim, const int32_t* positions,
                const std::vector<float>& inv_freq, RopeLayout layout) {
  const int half = int(inv_freq.size());
  assert(2 * half <= head_dim && "rotary_dim exceeds head_dim");
  if (m <= 0 || n_heads <= 0 || half == 0 || layout == RopeLayout::kNone) return;
  auto kernel = layout == RopeLayout::kInterleaved ? cpu::rope_interleaved_scalar
                : ctx.cpu().avx2                   ? cpu::rope_avx2
                                                   : cpu::rope_scalar;
  // Each token costs `half` sin/cos pairs plus n_heads·head_dim multiply-adds; thread only for
  // prefill-sized batches where that outweighs the fork-join (~a few µs).
  const int64_t work = m * (int64_t(n_heads) * head_dim + 16 * half);
  const int threads = work >= (1 << 16) ? int(std::min<int64_t>(ctx.threads(), m)) : 1;
  const size_t scratch_bytes = size_t(2 * half) * sizeof(float);
  if (threads == 1) {
    kernel(x, m, n_heads, head_dim, positions, inv_freq.data(), half,
           static_cast<float*>(ctx.scratch(0, scratch_bytes)));
    return;
  }
  ctx.pool().run([&](int t, int) {
    if (t >= threads) return;
    const int64_t b = m * t / threads, e = m * (t + 1) / threads;
    if (b >= e) return;
    float* cs = static_cast<float*>(ctx.scratch(t, scratch_bytes));
    kernel(x + b * n_heads * head_dim, e - b, n_heads, head_dim, positions + b, inv_freq.data(), half, cs);
  });
}

}  // namespace tern
