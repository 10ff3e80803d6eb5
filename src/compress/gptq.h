// GPTQ (Frantar et al., 2022): quantize a linear layer column by column, pushing each column's
// rounding error onto the columns not yet quantized through the inverse Hessian of the layer's
// inputs, H = Σ xᵀx. Walks the upper Cholesky factor U of H⁻¹ (H⁻¹ = UᵀU) in lazy blocks.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "compress/calibration.h"
#include "compress/model_linears.h"
#include "compress/quantized_model.h"
#include "core/exec_context.h"

namespace tern {

struct GptqOptions {
  std::function<void(int64_t, int64_t)> on_layer;  // (layers done, total), progress
  QuantSpec spec;
  // Mixed precision: the spec of each module ("model.layers.0.self_attn.v_proj"); empty: `spec` for all.
  std::function<QuantSpec(const std::string&)> spec_for;
  bool mse_clip = false;   // per group, shrink the range to the clip ratio with the least squared rounding error
  double percdamp = 0.01;  // H += percdamp · mean(diag H) · I
  int block_size = 128;    // lazy-batch width (changes speed, not the result)
  bool act_order = false;  // quantize columns by decreasing H diagonal (desc_act); sets g_idx when grouped
  bool static_groups = false;  // act-order: group ranges fixed up front in column order (no g_idx needed)
};

// One linear: w [rows, cols] f32, h [cols, cols] (XᵀX at any positive scale). Columns whose diagonal
// is zero (never activated) are zeroed, as in the reference implementation.
Result<QuantizedLinear> gptq_quantize_linear(ExecContext& ctx, const float* w, int64_t rows, int64_t cols,
                                             const std::vector<double>& h, const GptqOptions& options);

// The same for several linears reading one input: the Hessian's factorization is computed once
// (gptq_prepare) and reused (gptq_quantize_prepared) — the gate and up of one expert, q/k/v.
struct GptqHessian;
Result<std::shared_ptr<const GptqHessian>> gptq_prepare(ExecContext& ctx, const std::vector<double>& h, int64_t cols,
                                                        const GptqOptions& options);
Result<QuantizedLinear> gptq_quantize_prepared(ExecContext& ctx, const float* w, int64_t rows, int64_t cols,
                                               const GptqHessian& h, const GptqOptions& options);

// Sequential GPTQ (the GPTQ paper's and AutoGPTQ's "true sequential"): each stage's Hessians are
// collected with every earlier linear already quantized, so a layer compensates the errors the
// quantized layers before it make instead of fitting the base model's activations. Stages run in
// forward order; kPerLayer: one calibration pass per decoder layer (its four inputs at once);
// kPerInput: one per linear input (q/k/v, then o, then gate/up, then down; four passes per layer).
enum class GptqSequential { kOff, kPerLayer, kPerInput };

// Runs windows.size() × stages forwards over a private copy of `model` (`model` is not changed);
// options.on_layer reports (stages done, stages). copt: the calibration options (hessian is forced on).
Result<QuantizedModel> quantize_model_gptq_sequential(const Model& model, ExecContext& ctx,
                                                      const std::vector<std::vector<int32_t>>& windows,
                                                      CalibrationOptions copt, const GptqOptions& options,
                                                      GptqSequential mode = GptqSequential::kPerInput);

// The entry point `tern quantize --method gptq` calls: calibrates on `calib` (XᵀX per input), then
// quantize_model_gptq with options.damp and options.act_order (options.sequential: sequential GPTQ).
Result<QuantizedModel> gptq_quantize(ExecContext& ctx, const Model& model, const CalibData& calib,
                                     const QuantSpec& spec, const MethodOptions& options,
                                     const ProgressFn& progress = nullptr);

// Layer `layer`'s linears into qm (stats must hold that layer's Hessians); experts no calibration row
// reached are rounded to nearest and counted in *rtn_experts.
Status quantize_model_gptq_layer(const Model& model, ExecContext& ctx, const CalibrationStats& stats,
                                 const GptqOptions& options, int layer, QuantizedModel& qm, int64_t* rtn_experts);

// Every linear of the model (experts included), from calibration statistics collected with `hessian` on.
Result<QuantizedModel> quantize_model_gptq(const Model& model, ExecContext& ctx, const CalibrationStats& stats,
                                           const GptqOptions& options);

}  // namespace tern
