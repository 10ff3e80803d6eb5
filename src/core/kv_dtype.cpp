#include <fmt/format.h>

#include "core/kv_dtype.h"

namespace tern {

const char* kv_dtype_name(KvDType t) {
  switch (t) {
    case KvDType::BF16: return "bf16";
    case KvDType::F32: return "f32";
    case KvDType::INT8: return "int8";
    case KvDType::FP8: return "fp8";
  }
  return "?";
}

Result<KvDType> parse_kv_dtype(const std::string& name) {
  if (name == "bf16") return KvDType::BF16;
  if (name == "f32") return KvDType::F32;
  if (name == "int8") return KvDType::INT8;
  if (name == "fp8") return KvDType::FP8;
  return Status::error(fmt::format("unknown KV cache dtype '{}' (expected bf16, f32, int8 or fp8)", name));
}

}  // namespace tern
