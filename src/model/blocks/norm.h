// Norm block: RMSNorm or LayerNorm over the last dimension, with the optional residual add fused in
// front (x += residual; out = norm(x)), which is how the decoder adds a block's output into the
// residual stream. Which norm a layer uses is chosen when the weights are bound; quirks such as
// Gemma's `x * (1 + w)` are resolved there too (the bound weight is 1 + w, computed in f32).
#pragma once

#include <cstdint>
#include <vector>

#include "core/exec_context.h"

namespace tern {

enum class NormKind : uint8_t {
  kRms,    // x / sqrt(mean(x²) + eps) * weight
  kLayer,  // (x - mean) / sqrt(var + eps) * weight + bias
};

struct NormWeights {
  NormKind kind = NormKind::kRms;
  float eps = 1e-6f;
  std::vector<float> weight;  // [d], the multiplier as applied
  std::vector<float> bias;    // [d]; LayerNorm only, empty = none
  // The checkpoint stores weight - stored_offset (Gemma's RMSNorm stores w and applies 1 + w):
  // what a writer subtracts to save the tensor back in the checkpoint's form.
  float stored_offset = 0.f;

  bool present() const { return !weight.empty(); }
};

// x, out: [m, d] f32 (out may alias x); residual: [m, d] or null. With residual, x keeps x + residual.
void apply_norm(ExecContext& ctx, const NormWeights& w, float* x, const float* residual, int64_t m, int64_t d,
                float* out);

}  // namespace tern
