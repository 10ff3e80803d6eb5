// config.json "quantization_config" as AutoAWQ, AutoGPTQ and compressed-tensors (llm-compressor)
// write it, reduced to what tern's loaders and writers need. Anything tern cannot load (another
// quant_method, AWQ GEMV/Marlin packing, several compressed-tensors groups, asymmetric packed zero
// points, ...) is a one-line Status naming the field.
#pragma once

#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/status.h"
#include "formats/sparse/sparsity_config.h"

namespace tern {

enum class QuantMethod { None, Awq, Gptq, CompressedTensors };

// One compressed-tensors config group of a mixed-precision checkpoint: the modules it targets and
// their weight scheme (format and activations are shared by all groups).
struct QuantScheme {
  std::vector<std::string> targets;  // exact module names, "re:REGEX", "Linear", "Embedding"
  int bits = 4;
  int group = 128;  // 0 = per output channel
  bool symmetric = true;
};

struct QuantConfig {
  QuantMethod method = QuantMethod::None;
  int bits = 4;
  int group = 128;               // 0 = one scale per output channel (GPTQ group_size -1, CT strategy channel)
  bool symmetric = true;         // AWQ: !zero_point; GPTQ: sym; CT: weights.symmetric
  bool desc_act = false;         // GPTQ act-order (g_idx)
  bool gptq_v2 = false;          // GPTQ checkpoint_format gptq_v2: zero points stored without the -1
  bool fp8 = false;              // CT float-quantized (e4m3 weights)
  bool int8_activations = false; // CT input_activations int8 dynamic per token (W8A8)
  std::string ct_format;         // CT: pack-quantized, int-quantized, float-quantized
  std::vector<std::string> ignore;  // modules left unquantized (CT ignore, AWQ modules_to_not_convert)

  // CT mixed precision: every config group in order (the first also sets bits/group/symmetric above).
  // Empty: one scheme (the fields above) for every linear not ignored.
  std::vector<QuantScheme> schemes;

  // CT sparsity_config: linears stored sparse (formats/sparse/sparse_linear.h). A sparse-only
  // checkpoint (no config_groups) has method None: its values are in the model's float dtype.
  SparsityConfig sparsity;

  bool quantized() const { return method != QuantMethod::None; }
  // The config as it applies to `module`: bits/group/symmetric of the first scheme targeting it.
  QuantConfig for_module(const std::string& module) const;
  // Whether the config quantizes `module` at all (not ignored; targeted by a scheme when there are schemes).
  bool targets(const std::string& module) const;
  // Whether module (e.g. "lm_head", "model.layers.0.mlp.down_proj") is listed as unquantized.
  bool ignores(const std::string& module) const;
};

const char* quant_method_name(QuantMethod m);  // "awq", "gptq", "compressed-tensors", "none"

// qc: the quantization_config object; source names the file in errors.
Result<QuantConfig> parse_quant_config(const nlohmann::json& qc, const std::string& source);
// DIR/config.json's quantization_config, or a QuantConfig with method None when it has none.
Result<QuantConfig> load_quant_config(const std::string& dir);

// The quantization_config object the reference tools write for `c`.
nlohmann::ordered_json quant_config_to_json(const QuantConfig& c);

}  // namespace tern
