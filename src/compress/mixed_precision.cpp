#include "compress/mixed_precision.h"

#include <algorithm>
#include <sstream>

#include "compress/model_linears.h"

namespace tern {

std::vector<std::string> split_targets(const std::string& list) {
  std::vector<std::string> out;
  std::stringstream ss(list);
  for (std::string item; std::getline(ss, item, ',');)
    if (!item.empty()) out.push_back(item);
  return out;
}

std::vector<std::string> default_int8_modules(int n_layers) {
  std::vector<std::string> out;
  const int first = std::max(1, n_layers / 8);
  for (int l = 0; l < n_layers; ++l) {
    out.push_back(linear_module_name(l, LinearKind::kV));
    if (l < first) out.push_back(linear_module_name(l, LinearKind::kO));
    if (more_bits_layer(l, n_layers)) out.push_back(linear_module_name(l, LinearKind::kDown));
  }
  return out;
}

Result<QuantizedLinear> quantize_embedding(const Model& model, int bits) {
  const WeightMatrix& e = model.weights().embed;
  TERN_ASSIGN_OR_RETURN(std::vector<float> f, weight_to_f32(e));
  return quantize_rtn(f.data(), e.rows, e.cols, QuantSpec{bits, 0, true});
}

}  // namespace tern
