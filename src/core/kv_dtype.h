// Element type of the paged KV cache. It sits in core because both the model layer (which stores
// K/V) and the engine (which sizes the pool) name it; engine/model_runner.h re-exports it.
#pragma once

#include <span>
#include <string>

#include "core/status.h"

namespace tern {

enum class KvDType { BF16, F32, INT8, FP8 };  // INT8/FP8 carry a scale per (token slot, kv head)

// Every KV cache dtype, in the order help texts and error messages list them: f32, bf16, int8, fp8.
std::span<const KvDType> all_kv_dtypes();
const char* kv_dtype_name(KvDType t);
// The names of all_kv_dtypes() joined by `sep` ("f32|bf16|int8|fp8" with "|").
std::string kv_dtype_names(const char* sep);
// "f32", "bf16", "int8", "fp8"; any other name is an error that lists these (and only these).
Result<KvDType> parse_kv_dtype(const std::string& name);

}  // namespace tern
