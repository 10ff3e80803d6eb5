// SmoothQuant (Xiao et al., 2023) for W8A8: activations have a few outlier channels that per-token
// int8 rounding handles badly, weights do not. s_j = max|x_j|^alpha / max|w_j|^(1-alpha) moves the
// difficulty into the weights: x / s is what the linear reads (folded into the RMSNorm weight for
// q/k/v and gate/up, into up_proj's rows for down_proj), W·diag(s) is rounded to int8 per output
// channel, and activations are rounded per token at run time. o_proj's input is smoothed through
// v_proj's rows (the attention output is linear in v), with s tied across the query heads that share a
// kv head so that the fold stays exact under grouped-query attention.
#pragma once

#include <array>
#include <cstdint>
#include <vector>

#include "compress/calibration.h"
#include "compress/model_linears.h"
#include "compress/quantized_model.h"

namespace tern {

struct SmoothQuantOptions {
  double alpha = 0.5;
  // Per-layer migration strength by smoothed input (index LinearInput: q/k/v, o, gate/up, down), e.g.
  // from search_smoothquant_alpha; empty: `alpha` everywhere.
  std::vector<std::array<double, 4>> layer_alpha;
  bool smooth_down = true;  // also smooth down_proj's input through up_proj
  bool smooth_o = true;     // also smooth o_proj's input through v_proj
  QuantSpec spec{8, 0, /*symmetric=*/true};  // int8 per output channel
};

// s [cols] from act_max [cols] (max |x_j| over calibration) and w_max [cols] (max |w_ij| over the
// rows of every linear reading that input). Channels that never activate keep s = 1.
std::vector<float> smoothquant_scales(const std::vector<float>& act_max, const std::vector<float>& w_max,
                                      double alpha);

// max over channels / median over channels of the per-channel maxima of x·diag(1/s) (s empty: 1).
double activation_outlier_ratio(const std::vector<float>& act_max, const std::vector<float>& s);

// The entry point `tern quantize --method smoothquant` calls: calibrates on `calib` (max |x|), then
// quantize_model_smoothquant with options.alpha and `spec` (int8 per channel expected: bits 8, group 0).
Result<QuantizedModel> smoothquant_quantize(ExecContext& ctx, const Model& model, const CalibData& calib,
                                            const QuantSpec& spec, const MethodOptions& options,
                                            const ProgressFn& progress = nullptr);

Result<QuantizedModel> quantize_model_smoothquant(const Model& model, const CalibrationStats& stats,
                                                  const SmoothQuantOptions& options);

// Layer `layer` after smoothing, before rounding: f32 weights [rows, cols] by LinearKind and the norms
// that absorbed 1/s. The model computes the same function with them (up to float rounding).
struct SmoothedLayer {
  std::array<std::vector<float>, kLinearKinds> w;
  std::vector<float> input_norm, post_attn_norm;
  std::array<std::vector<float>, 4> s;  // the factors by LinearInput (x / s is read); empty: not smoothed
};
Result<SmoothedLayer> smooth_layer(const Model& model, const CalibrationStats& stats, int layer,
                                   const SmoothQuantOptions& options);

}  // namespace tern
