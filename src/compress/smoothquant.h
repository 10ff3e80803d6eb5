// SmoothQuant (Xiao et al. 2022): per input channel s = max|x|^alpha / max|w|^(1-alpha) moves
// activation outliers into the weights, then W8A8 per-channel int8 (QuantizedModel::int8_activations).
// Factors are folded into the previous RMSNorm (QuantizedModel::vectors). Implemented by the
// quantization-algorithms work.
#pragma once

#include "compress/quantized_model.h"
#include "core/status.h"
#include "model/model.h"
#include "ops/exec_context.h"

namespace tern {

Result<QuantizedModel> smoothquant_quantize(ExecContext& ctx, const Model& model, const CalibData& calib,
                                            const QuantSpec& spec, const MethodOptions& options,
                                            const ProgressFn& progress = nullptr);

}  // namespace tern
