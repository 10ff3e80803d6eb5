// AWQ (activation-aware weight quantization, Lin et al. 2023): per input channel scales s searched on
// calibration activations (s = mean|x|^alpha over a grid of alpha), weights scaled by s before
// round-to-nearest, 1/s folded into the previous RMSNorm. Implemented by the quantization-algorithms work.
#pragma once

#include "compress/quantized_model.h"
#include "core/status.h"
#include "model/model.h"
#include "ops/exec_context.h"

namespace tern {

// Quantizes every linear layer of the decoder (not the LM head); smoothing factors are folded into
// QuantizedModel::vectors (norm weights); a factor no previous op can absorb stays in QuantizedLinear::smooth.
Result<QuantizedModel> awq_quantize(ExecContext& ctx, const Model& model, const CalibData& calib,
                                    const QuantSpec& spec, const MethodOptions& options,
                                    const ProgressFn& progress = nullptr);

}  // namespace tern
