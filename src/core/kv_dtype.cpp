#include "core/kv_dtype.h"

#include <fmt/format.h>

namespace tern {

namespace {
constexpr KvDType kAll[] = {KvDType::F32, KvDType::BF16, KvDType::INT8, KvDType::FP8};
}  // namespace

std::span<const KvDType> all_kv_dtypes() { return kAll; }

const char* kv_dtype_name(KvDType t) {
  switch (t) {
    case KvDType::BF16: return "bf16";
    case KvDType::F32: return "f32";
    case KvDType::INT8: return "int8";
    case KvDType::FP8: return "fp8";
  }
  return "?";
}

std::string kv_dtype_names(const char* sep) {
  std::string s;
  for (KvDType t : kAll) s += (s.empty() ? "" : sep) + std::string(kv_dtype_name(t));
  return s;
}

Result<KvDType> parse_kv_dtype(const std::string& name) {
  for (KvDType t : kAll) {
    if (name == kv_dtype_name(t)) return t;
  }
  return Status::error(fmt::format("unknown KV cache dtype '{}' (expected one of {})", name, kv_dtype_names(", ")));
}

}  // namespace tern
