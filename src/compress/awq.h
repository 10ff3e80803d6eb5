// AWQ (Lin et al., 2023): activation-aware weight quantization. Input channels that carry large
// activations matter most, so each is scaled up by s = mean|x|^alpha before rounding (W·diag(s)) and
// the input divided by s; alpha is grid-searched to minimise the output error on calibration rows.
// The division is folded into the op before the linear: the norm weight (q/k/v, gate/up; a
// LayerNorm's bias too, Gemma's stored w of 1 + w), v_proj's rows (o_proj; with grouped-query
// attention s is tied across the heads that share a kv head so that it folds), up_proj's rows
// (down_proj); the experts of a MoE layer share one scale (quantize_model_awq_layer). Optionally each group's range is then clipped
// (searched per row and group on the same output error).
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "compress/calibration.h"
#include "compress/model_linears.h"
#include "compress/quantized_model.h"
#include "core/exec_context.h"

namespace tern {

struct AwqOptions {
  std::function<void(int64_t, int64_t)> on_layer;  // (layers done, total), progress
  QuantSpec spec{4, 128, /*symmetric=*/false};  // AutoAWQ's default: asymmetric (zero points), g128
  int grid = 20;            // alphas 0, 1/grid, ..., (grid-1)/grid
  float fixed_alpha = -1;   // >= 0: no search, s = mean|x|^fixed_alpha (tests: a scale that is not 1)
  bool duo_scaling = false;  // true: s = mean|x|^a / mean|ŵ|^(1-a), ŵ = |w| over its group's max (AutoAWQ);
                             // false: s = mean|x|^a (the paper)
  bool clip = true;         // search a clipping ratio per row and group
  int clip_grid = 20;       // ratios 1, 1 - max_shrink/clip_grid, ...
  float max_shrink = 0.5f;  // smallest ratio tried is 1 - max_shrink
  int64_t clip_rows = 256;  // calibration rows used by the clipping search
  // Mixed precision: the spec of each module ("model.layers.0.mlp.down_proj"); empty: `spec` for all.
  // The scale search uses `spec`; each module is then rounded with its own.
  std::function<QuantSpec(const std::string&)> spec_for;
  // Round the scaled weights with GPTQ instead of RTN + clipping (the two compose: AWQ moves the scale,
  // GPTQ compensates the rounding error); needs calibration with the Hessian (XᵀX, scaled by 1/s here).
  bool gptq = false;
  double percdamp = 0.01;
  bool mse_clip = false;  // GPTQ: MSE-optimal group ranges
};

struct AwqScale {
  std::vector<float> scale;  // [cols] s (W·diag(s), x / s)
  float alpha = 0;
  double loss = 0;      // output MSE at the chosen alpha
  double loss_rtn = 0;  // output MSE of plain RTN (alpha = 0)
};

// Searches s for linears sharing the input x [n, cols]: w [rows, cols] is their weights stacked by
// rows; mean_abs [cols] is mean |x| over all calibration rows (tie channels beforehand by averaging).
AwqScale awq_search_scale(ExecContext& ctx, const float* x, int64_t n, const float* w, int64_t rows, int64_t cols,
                          const std::vector<float>& mean_abs, const QuantSpec& spec, int grid, bool duo_scaling = false);

// Quantizes w [rows, cols] (already scaled), choosing per row and group the clipping ratio that
// minimises the output error on x [n, cols] (x already divided by s). clip = false: plain RTN.
Result<QuantizedLinear> awq_quantize_clipped(ExecContext& ctx, const float* w, int64_t rows, int64_t cols,
                                             const float* x, int64_t n, const AwqOptions& options, bool clip);

// The entry point `tern quantize --method awq` calls: calibrates on `calib` (512 sampled rows per input),
// then quantize_model_awq with the defaults above and `spec`. Smoothing factors are folded into
// QuantizedModel::vectors (norm weights); nothing is left in QuantizedLinear::smooth for Llama-family models.
Result<QuantizedModel> awq_quantize(ExecContext& ctx, const Model& model, const CalibData& calib,
                                    const QuantSpec& spec, const MethodOptions& options,
                                    const ProgressFn& progress = nullptr);

// What a whole-model run reports once at the end (stderr): inputs left unscaled and why, experts
// that no calibration row reached (rounded to nearest).
struct AwqLog {
  std::map<std::string, int64_t> unscaled;  // reason -> inputs
  int64_t rtn_experts = 0;                  // expert matrices without calibration rows
  void print() const;
};

// Layer `layer` into qm (stats must hold that layer's statistics with a row sample). The inputs each
// scale: q/k/v (and MLA q_a / kv_a) fold into the input norm, o into v's rows, MLA q_b into
// q_a_layernorm, gate/up into the feed-forward norm, down into up's rows; on a mixture-of-experts
// layer every expert's and the shared expert's gate/up share ONE scale folded into that norm (the
// router and shared_expert_gate, kept dense, get their columns multiplied by it), searched on the
// whole MoE block's output, and each expert's down gets its own scale folded into its up rows.
Status quantize_model_awq_layer(const Model& model, ExecContext& ctx, const CalibrationStats& stats,
                                const AwqOptions& options, int layer, QuantizedModel& qm, AwqLog* log);

// Every linear of the model; calibration must have kept a row sample (sample_rows > 0).
Result<QuantizedModel> quantize_model_awq(const Model& model, ExecContext& ctx, const CalibrationStats& stats,
                                          const AwqOptions& options);

}  // namespace tern
