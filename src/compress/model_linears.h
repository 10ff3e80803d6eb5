// The linear layers of a Llama-family decoder as the quantization methods walk them, and the
// in-memory evaluation of a QuantizedModel (dequantized into a dense copy of the model).
// Embeddings and the LM head stay as they are (as in AutoAWQ / AutoGPTQ).
#pragma once

#include <array>
#include <memory>
#include <string>
#include <vector>

#include "compress/linear_sites.h"
#include "compress/quantized_model.h"
#include "core/status.h"
#include "model/decoder.h"
#include "model/model.h"

namespace tern {

enum class LinearKind { kQ, kK, kV, kO, kGate, kUp, kDown };
constexpr int kLinearKinds = 7;
constexpr std::array<LinearKind, kLinearKinds> kAllLinears = {LinearKind::kQ,    LinearKind::kK,  LinearKind::kV,
                                                              LinearKind::kO,    LinearKind::kGate, LinearKind::kUp,
                                                              LinearKind::kDown};

const char* linear_name(LinearKind k);          // Hugging Face suffix, e.g. "self_attn.q_proj"
LinearInput linear_input(LinearKind k);         // which calibration slot feeds it
const WeightMatrix& linear_weight(const DecoderLayerWeights& l, LinearKind k);
inline WeightMatrix& linear_weight(DecoderLayerWeights& l, LinearKind k) {
  return const_cast<WeightMatrix&>(linear_weight(static_cast<const DecoderLayerWeights&>(l), k));
}

// Hugging Face names: module "model.layers.3.self_attn.q_proj" (QuantizedModel::linears keys) and the
// norm tensors AWQ/SmoothQuant rewrite, "model.layers.3.input_layernorm.weight" (QuantizedModel::vectors keys).
std::string linear_module_name(int layer, LinearKind k);
std::string norm_tensor_name(int layer, bool post_attention);

// One decoder layer's results while a method runs; store_layer files them under Hugging Face names
// (the norms only when the method changed them).
struct LayerResult {
  std::array<QuantizedLinear, kLinearKinds> linears;  // by LinearKind
  std::vector<float> input_norm, post_attn_norm;      // [hidden], after folding
  bool norms_changed = false;
  QuantizedLinear& at(LinearKind k) { return linears[size_t(k)]; }
};
void store_layer(QuantizedModel& qm, int layer, LayerResult&& r);

// A dense weight (f32/f16/bf16) as f32 [rows, cols]; quantized formats are an error.
Result<std::vector<float>> weight_to_f32(const WeightMatrix& w);

// SmoothQuant walks the Llama-family linears above (LinearKind); it refuses every other architecture
// by name. RTN, AWQ and GPTQ walk the model's own list (linear_sites.h) and take every architecture
// tern runs, experts included.
Status check_quantizable_architecture(const Model& model);

// Files one layer's results (per_site[i] for ll.sites[i]) in qm under their stored module names, the
// parts of a fused module concatenated by rows.
Status store_sites(QuantizedModel& qm, const LayerLinears& ll, std::vector<QuantizedLinear>&& per_site);

// Round to nearest, no calibration.
Result<QuantizedModel> quantize_model_rtn(const Model& model, const QuantSpec& spec);

// Evaluation in memory: replaces `model`'s linear weights, norms and rescaled dense matrices (routers)
// by the dequantized (dense f32) ones of `qm` (linears qm does not name keep their weights), so
// perplexity/KL measure exactly what the quantized weights compute. W8A8 also needs the activation rounding: pass activation_fake_quant()
// as the perplexity observer when qm.int8_activations.
Status apply_dequantized(Model& model, const QuantizedModel& qm);

// x [rows, cols] in place: each row rounded to int8 (symmetric, absmax / 127) and back, as a W8A8
// kernel's per-token activation quantization sees it.
void fake_quantize_rows_int8(float* x, int64_t rows, int64_t cols);

// Rounds every linear input to int8 per token (fake_quantize_rows_int8), as a W8A8 kernel does.
std::unique_ptr<ActivationObserver> activation_fake_quant();

}  // namespace tern
