// Mixed precision, in the spirit of llama.cpp's Q4_K_M: most linears at the base spec (e.g. int4
// g128), a few sensitive ones (chosen by a measured sensitivity, e.g. v_proj / down_proj) at int8 per
// output channel, and the token embedding (the LM head too when tied) at int8 per row instead of bf16.
// A checkpoint stores it as compressed-tensors config_groups with per-module targets
// (quant_config.h); the methods ask module_spec() which spec each module gets.
#pragma once

#include <string>
#include <vector>

#include "formats/quant/quantized_linear.h"
#include "core/status.h"
#include "formats/quant/module_targets.h"
#include "model/model.h"

namespace tern {

struct MixedPrecision {
  QuantSpec base{4, 128, true};
  std::vector<std::string> high_targets;  // modules quantized with `high` instead of `base`
  QuantSpec high{8, 0, true};             // int8 per output channel
  int embed_bits = 0;                     // 0: embedding kept as stored; 8: int8 per row (symmetric)

  QuantSpec module_spec(const std::string& module) const {
    return module_matches_any(module, high_targets) ? high : base;
  }
};

// tern quantize's default int8 set for 4-bit checkpoints (--int8-modules auto), as module names: v_proj
// in every layer (small under grouped-query attention), down_proj in the layers where llama.cpp's Q4_K_M
// gives ffn_down 6 bits (more_bits_layer), o_proj in the first eighth of the layers (at least one).
// On docs-llama-28m it matches the sensitivity-searched list at a smaller file (docs/benchmarks.md).
std::vector<std::string> default_int8_modules(int n_layers);

// Parses "v_proj,layers.0.mlp.down_proj,re:.*layers\.[0-3]\.mlp\.down_proj" (comma-separated targets).
std::vector<std::string> split_targets(const std::string& list);

// The token embedding [vocab, hidden] rounded to `bits` per row (symmetric, absmax), as a QuantizedLinear
// (rows = vocab, cols = hidden) keyed kEmbedModule in a QuantizedModel.
Result<QuantizedLinear> quantize_embedding(const Model& model, int bits);

}  // namespace tern
