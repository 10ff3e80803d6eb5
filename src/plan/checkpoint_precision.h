// The precision a checkpoint stores its weights at, as the planner names it (plan/precision.h): from
// config.json's torch_dtype, or from its quantization_config when it has one (DeepSeek-V3's
// `quant_method: fp8`, AutoAWQ / AutoGPTQ bits + group_size, compressed-tensors config groups).
#pragma once

#include <nlohmann/json.hpp>
#include <string>

#include "core/status.h"

namespace tern::plan {

// "bf16", "fp16" or "f32" from torch_dtype / dtype ("" or anything else: bf16).
std::string precision_of_torch_dtype(const std::string& torch_dtype);

// A parse_weight_precision name for a quantization_config object: "fp8", "int8", "int4-gN",
// "int4-channel". A method or scheme the planner cannot price (bitsandbytes, 3-bit GPTQ, several
// compressed-tensors groups, ...) is an error naming it; `source` names the file.
Result<std::string> precision_of_quant_config(const nlohmann::json& qc, const std::string& source);

}  // namespace tern::plan
