#include "compress/recipe.h"

namespace tern {

QuantRecipe default_recipe(const std::string& method, int bits) {
  QuantRecipe r;
  if (bits == 4 && method != "smoothquant") {  // SmoothQuant is W8A8 only
    // int4 g128 with zero points, MSE-clipped ranges, the tied embedding and a few sensitive linears at
    // int8 (default_int8_modules): every method gains from each part (docs/benchmarks.md).
    r.asymmetric = true;
    r.embed_bits = 8;
    r.int8_modules = true;
    r.mse_clip = true;
    if (method == "gptq") r.sequential = 1, r.calib_windows = 128;
    if (method == "awq") r.awq_gptq = true, r.calib_windows = 128;
  }
  if (method == "smoothquant") r.sq_alpha_search = true, r.calib_windows = 128;
  return r;
}

}  // namespace tern
