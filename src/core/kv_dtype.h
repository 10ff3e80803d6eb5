// Element type of the paged KV cache. It sits in core because both the model layer (which stores
// K/V) and the engine (which sizes the pool) name it; engine/model_runner.h re-exports it.
#pragma once

#include <string>

#include "core/status.h"

namespace tern {

enum class KvDType { BF16, F32, INT8, FP8 };  // INT8/FP8 carry a scale per (token slot, kv head)
const char* kv_dtype_name(KvDType t);
Result<KvDType> parse_kv_dtype(const std::string& name);  // "bf16", "f32", "int8", "fp8"

}  // namespace tern
