// GPTQ (Frantar et al. 2022): layer by layer, quantize columns in order and spread each column's error
// over the not-yet-quantized columns with the inverse Hessian H = 2 X Xᵀ of the calibration inputs
// (dampening options.damp, optional act-order giving g_idx). Implemented by the quantization-algorithms work.
#pragma once

#include "compress/quantized_model.h"
#include "core/status.h"
#include "model/model.h"
#include "ops/exec_context.h"

namespace tern {

Result<QuantizedModel> gptq_quantize(ExecContext& ctx, const Model& model, const CalibData& calib,
                                     const QuantSpec& spec, const MethodOptions& options,
                                     const ProgressFn& progress = nullptr);

}  // namespace tern
