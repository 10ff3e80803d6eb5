// What every whole-model quantization method returns, and what it is given besides the model.
// rtn.h (here), awq.h, gptq.h, smoothquant.h all map (Model, spec) -> QuantizedModel;
// checkpoint_writer.h writes a QuantizedModel as an AutoAWQ / AutoGPTQ / compressed-tensors checkpoint.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "formats/quant/quantized_linear.h"

namespace tern {

// Calibration data: the token ids of the user's calibration file (BOS once at the start), cut into
// windows of `seq_len` tokens, at most `max_windows` of them.
struct CalibData {
  std::vector<int32_t> tokens;
  int64_t seq_len = 512;
  int64_t max_windows = 32;
};

// Method knobs beyond QuantSpec (defaults follow the papers).
struct MethodOptions {
  bool act_order = false;        // GPTQ: columns by decreasing Hessian diagonal (g_idx / desc_act)
  double damp = 0.01;            // GPTQ: fraction of mean(diag H) added to the diagonal
  double alpha = 0.5;            // SmoothQuant migration strength
  bool alpha_search = false;     // SmoothQuant: α per layer and input, searched on the calibration text
  bool int8_activations = false; // W8A8: activations quantized per token at run time (SmoothQuant: always)
  bool static_groups = false;    // GPTQ act-order: group ranges fixed in column order (no g_idx)
  bool mse_clip = false;         // GPTQ (and AWQ+GPTQ): MSE-optimal group ranges
  bool awq_gptq = false;         // AWQ: round the scaled weights with GPTQ (calibrates the Hessian too)
  int sequential = 0;            // GPTQ: 0 off, 1 one calibration pass per layer, 2 per linear input
  // Mixed precision: the spec of each module ("model.layers.0.mlp.down_proj"); empty: the method's spec.
  std::function<QuantSpec(const std::string&)> spec_for;
};

// `done` of `total` units (layers or matrices) finished; drives the progress bar.
using ProgressFn = std::function<void(int64_t done, int64_t total)>;

struct QuantizedModel {
  // Keyed by the Hugging Face module name, e.g. "model.layers.0.self_attn.q_proj" (tensor "<name>.weight").
  // Layers absent here (the LM head, the embedding) are written unquantized.
  std::map<std::string, QuantizedLinear> linears;
  // f32 replacements of 1-D tensors, by full tensor name: norm weights that absorbed smoothing factors
  // ("model.layers.0.input_layernorm.weight").
  std::map<std::string, std::vector<float>> vectors;
  bool int8_activations = false;  // W8A8 (compressed-tensors int-quantized with dynamic per-token activations)
};

}  // namespace tern
