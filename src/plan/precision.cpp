#include "plan/precision.h"

#include <fmt/format.h>

#include <algorithm>
#include <cctype>

namespace tern::plan {

namespace {

std::string lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return char(std::tolower(c)); });
  return s;
}

// ggml block types: bits per weight = block bytes × 8 / block elements (scales and mins included).
struct GgufType {
  const char* name;
  double bpw;
};
constexpr GgufType kGguf[] = {
    {"q8_0", 8.5},      // 32 × int8 + f16 scale = 34 bytes / 32
    {"q6_k", 6.5625},   // 210 bytes / 256
    {"q5_k", 5.5},      // 176 bytes / 256
    {"q5_0", 5.5},      // 22 bytes / 32
    {"q5_1", 6.0},      // 24 bytes / 32
    {"q4_k", 4.5},      // 144 bytes / 256
    {"q4_0", 4.5},      // 18 bytes / 32
    {"q4_1", 5.0},      // 20 bytes / 32
    {"q3_k", 3.4375},   // 110 bytes / 256
    {"q2_k", 2.625},    // 84 bytes / 256
    {"iq4_nl", 4.5},    // 18 bytes / 32
    {"iq4_xs", 4.25},   // 136 bytes / 256
};

}  // namespace

Result<WeightPrecision> parse_weight_precision(const std::string& name) {
  const std::string n = lower(name);
  WeightPrecision p;
  p.name = n;
  if (n == "bf16" || n == "fp16" || n == "f16") {
    p.name = n == "bf16" ? "bf16" : "fp16";
    p.compute = p.name;
    return p;
  }
  if (n == "f32" || n == "fp32") {
    p.name = "f32";
    p.bits = 32, p.vector_bits = 32, p.compute = "f32";
    p.quantize_embeddings = true;
    return p;
  }
  if (n == "fp8" || n == "int8") {
    p.bits = 8, p.row_scale_bits = 32, p.compute = n;  // W8A8 on devices that have the units
    return p;
  }
  if (n == "int4-channel") {
    p.bits = 4, p.row_scale_bits = 32, p.compute = "bf16";  // W4A16, one scale per output row
    return p;
  }
  if (n == "int4" || n.rfind("int4-g", 0) == 0) {
    int g = 128;
    if (n != "int4") {
      const std::string digits = n.substr(6);
      if (digits.empty() || digits.size() > 5 || !std::all_of(digits.begin(), digits.end(), ::isdigit)) {
        return Status::error(fmt::format("weight precision '{}': expected int4-gN with a group size N", name));
      }
      g = std::stoi(digits);
      if (g < 8 || g % 8 != 0) return Status::error(fmt::format("weight precision '{}': group size must be a multiple of 8", name));
    }
    p.name = fmt::format("int4-g{}", g);
    p.bits = 4, p.group = g, p.group_scale_bits = 32, p.compute = "bf16";  // W4A16: dequantized in the kernel
    return p;
  }
  for (const auto& t : kGguf) {
    if (n == t.name) {
      p.name = t.name;
      std::transform(p.name.begin(), p.name.end(), p.name.begin(), [](unsigned char c) { return char(std::toupper(c)); });
      p.bits = t.bpw, p.quantize_embeddings = true, p.vector_bits = 32, p.compute = "bf16";
      return p;
    }
  }
  return Status::error(fmt::format(
      "unknown weight precision '{}' (expected bf16, fp16, f32, fp8, int8, int4-gN, int4-channel, or a GGUF type such "
      "as Q4_K, Q8_0)",
      name));
}

KvPrecision kv_precision(KvDType t) {
  switch (t) {
    case KvDType::F32: return KvPrecision{"f32", 4, 0};
    case KvDType::BF16: return KvPrecision{"bf16", 2, 0};
    // tern's paged cache keeps an f32 scale per (token slot, KV head) for K and for V: 8 bytes per token and head.
    case KvDType::INT8: return KvPrecision{"int8", 1, 8};
    case KvDType::FP8: return KvPrecision{"fp8", 1, 8};
  }
  return KvPrecision{};
}

Result<KvPrecision> parse_kv_precision(const std::string& name) {
  TERN_ASSIGN_OR_RETURN(KvDType t, parse_kv_dtype(lower(name)));
  return kv_precision(t);
}

}  // namespace tern::plan
