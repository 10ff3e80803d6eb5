// The recipe `tern quantize` runs when the user gives only a method and a bit width: for each method
// the combination measured best on docs-llama-28m (docs/benchmarks.md "Quantization quality",
// "Default recipes"). Every part has a command-line switch to turn it off; the CLI starts from
// default_recipe() and applies what the user gave.
#pragma once

#include <cstdint>
#include <string>

namespace tern {

struct QuantRecipe {
  bool asymmetric = false;      // zero points (4-bit); 8-bit weights are symmetric per channel
  bool mse_clip = false;        // per group, the clip ratio with the least squared rounding error
  int sequential = 0;           // GPTQ: 0 off, 1 one calibration pass per decoder layer, 2 per linear input
  bool awq_gptq = false;        // AWQ: round the AWQ-scaled weights with GPTQ
  bool sq_alpha_search = false; // SmoothQuant: α per layer and input from the calibration text
  int embed_bits = 16;          // 8: the tied embedding / LM head int8 per row; 16: as stored
  bool int8_modules = false;    // the default int8 linears (mixed_precision.h default_int8_modules)
  int64_t calib_windows = 32;   // calibration windows of --calib-ctx tokens (at most)
};

// method: rtn, awq, gptq or smoothquant; bits: 4 or 8.
QuantRecipe default_recipe(const std::string& method, int bits);
}  // namespace tern
