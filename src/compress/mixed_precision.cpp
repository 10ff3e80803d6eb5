#include "compress/mixed_precision.h"

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

Result<QuantizedLinear> quantize_embedding(const Model& model, int bits) {
  const WeightMatrix& e = model.weights().embed;
  TERN_ASSIGN_OR_RETURN(std::vector<float> f, weight_to_f32(e));
  return quantize_rtn(f.data(), e.rows, e.cols, QuantSpec{bits, 0, true});
}

}  // namespace tern
