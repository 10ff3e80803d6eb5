// Storage precisions the planner prices: of the weights (bf16 … int4 groups, GGUF block types) and
// of the KV cache. Bits per weight include the scales each format stores beside its codes.
#pragma once

#include <string>

#include "core/kv_dtype.h"
#include "core/status.h"

namespace tern::plan {

struct WeightPrecision {
  std::string name = "bf16";
  double bits = 16;             // per weight of a matrix, before scales
  double row_scale_bits = 0;    // one scale per output row (int8, fp8: f32 = 32 bits)
  int group = 0;                // int4-gN: columns per scale
  double group_scale_bits = 0;  // bits of one group's scale (f32 = 32)
  bool quantize_embeddings = false;  // GGUF quantizes token_embd/output; int8/fp8/int4 keep them bf16
  double vector_bits = 16;      // norms and biases
  std::string compute = "bf16"; // the catalog FLOP/s entry matmuls run at (fp8, int8, bf16, f32)

  // Bits per weight of a matrix of `cols` input features, scales included.
  double matrix_bits(int64_t cols) const {
    double b = bits + (cols > 0 ? row_scale_bits / double(cols) : 0);
    if (group > 0) b += group_scale_bits / double(group);
    return b;
  }
  double embedding_bits(int64_t cols) const { return quantize_embeddings ? matrix_bits(cols) : 16; }
};

// "bf16", "fp16"/"f16", "f32", "fp8", "int8", "int4" (= int4-g128), "int4-gN", "int4-channel", or a GGUF type
// (F16, BF16, Q8_0, Q6_K, Q5_K, Q5_0, Q5_1, Q4_K, Q4_0, Q4_1, Q3_K, Q2_K, IQ4_NL, IQ4_XS), any case.
Result<WeightPrecision> parse_weight_precision(const std::string& name);

struct KvPrecision {
  std::string name = "bf16";
  double bytes = 2;                  // per cached element
  double scale_bytes_per_head = 0;   // int8/fp8: an f32 scale per token and KV head, for K and for V
};

// The planner prices the KV caches tern's engine has (core/kv_dtype.h), and only those.
KvPrecision kv_precision(KvDType t);
// A core/kv_dtype.h name, any case; the error lists the valid names.
Result<KvPrecision> parse_kv_precision(const std::string& name);

}  // namespace tern::plan
