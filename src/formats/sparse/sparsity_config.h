// config.json "quantization_config.sparsity_config" as compressed-tensors (llm-compressor) writes it:
//   {"format": "sparse-bitmask" | "sparse-24-bitmask", "sparsity_structure": "unstructured" | "2:4",
//    "targets": ["Linear"], "ignore": ["lm_head"], "global_sparsity": 0.5}
// A checkpoint may be sparse only (no config_groups: values in the model's float dtype) or sparse and
// int8-quantized (int-quantized config group, per-channel symmetric scales). Other formats and
// structures are a one-line Status naming the field.
#pragma once

#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/status.h"

namespace tern {

enum class SparseFormat { None, Bitmask, Bitmask24 };

struct SparsityConfig {
  SparseFormat format = SparseFormat::None;
  std::vector<std::string> targets;  // "Linear", exact module names or "re:REGEX"
  std::vector<std::string> ignore;
  double global_sparsity = 0.0;      // informational: the fraction of zeros over the targets

  bool enabled() const { return format != SparseFormat::None; }
};

const char* sparse_format_name(SparseFormat f);  // "sparse-bitmask", "sparse-24-bitmask", "none"

// sc: the sparsity_config object; where: "<file>: quantization_config.sparsity_config." for errors.
Result<SparsityConfig> parse_sparsity_config(const nlohmann::json& sc, const std::string& where);
nlohmann::ordered_json sparsity_config_to_json(const SparsityConfig& c);

}  // namespace tern
