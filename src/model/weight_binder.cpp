#include "model/weight_binder.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "formats/quant/checkpoint_layouts.h"
#include "formats/quant/pack_weights.h"

namespace tern {

Result<const TensorInfo*> WeightBinder::take(const std::string& name, const std::vector<int64_t>& shape) {
  const TensorInfo* t = store_->find(name);
  if (!t) {
    return Status::error(fmt::format("{}: missing tensor '{}' (shape [{}] by the config)", store_->source(), name,
                                     fmt::join(shape, ", ")));
  }
  if (t->shape != shape) {
    return Status::error(fmt::format("{}: tensor '{}': shape [{}] but the config implies [{}]", t->file, name,
                                     fmt::join(t->shape, ", "), fmt::join(shape, ", ")));
  }
  used_.insert(name);
  return t;
}

Result<WeightMatrix> WeightBinder::quantized_matrix(const std::string& module, int64_t rows, int64_t cols) {
  TERN_ASSIGN_OR_RETURN(QuantizedLinear ql, unpack_checkpoint_linear(*store_, *quant_, module, rows, cols));
  TERN_ASSIGN_OR_RETURN(WeightMatrix w, pack_for_kernels(ql, quant_->int8_activations, *arena_, module));
  for (const auto& n : checkpoint_tensor_names(*quant_, module)) ignore_if_present(n);
  return w;
}

Result<WeightMatrix> WeightBinder::matrix(const std::string& name, int64_t rows, int64_t cols) {
  constexpr std::string_view kSuffix = ".weight";
  if (quant_ && quant_->quantized() && name.size() > kSuffix.size() &&
      name.compare(name.size() - kSuffix.size(), kSuffix.size(), kSuffix) == 0) {
    const std::string module = name.substr(0, name.size() - kSuffix.size());
    if (has_quantized_linear(*store_, *quant_, module)) return quantized_matrix(module, rows, cols);
  }
  TERN_ASSIGN_OR_RETURN(const TensorInfo* t, take(name, {rows, cols}));
  if (!dtype_is_float(t->dtype)) {
    return Status::error(fmt::format("{}: tensor '{}': dtype {} is not a dense weight type{}", t->file, name,
                                     dtype_safetensors_name(t->dtype),
                                     quant_ && quant_->quantized() ? "" : " (is quantization_config missing?)"));
  }
  return WeightMatrix{t->data, t->dtype, rows, cols};
}

Result<std::vector<float>> WeightBinder::vector_f32(const std::string& name, int64_t n) {
  TERN_ASSIGN_OR_RETURN(const TensorInfo* t, take(name, {n}));
  std::vector<float> v(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) v[size_t(i)] = load_as_f32(t->data, t->dtype, size_t(i));
  return v;
}

void WeightBinder::ignore_if_present(const std::string& name) {
  if (has(name)) used_.insert(name);
}

int WeightBinder::ignore_prefix(const std::string& prefix) {
  int n = 0;
  for (const auto& t : store_->tensors()) {
    if (t.name.compare(0, prefix.size(), prefix) == 0) used_.insert(t.name), ++n;
  }
  return n;
}

Status WeightBinder::check_all_used() const {
  std::vector<std::string> unknown;
  for (const auto& t : store_->tensors()) {
    if (!used_.count(t.name)) unknown.push_back(t.name);
  }
  if (unknown.empty()) return Status::ok();
  const TensorInfo* first = store_->find(unknown.front());
  std::string shown;
  for (size_t i = 0; i < unknown.size() && i < 3; ++i) shown += (i ? ", '" : "'") + unknown[i] + "'";
  return Status::error(fmt::format("{}: {} tensor(s) not used by this architecture: {}{}", first->file,
                                   unknown.size(), shown, unknown.size() > 3 ? ", ..." : ""));
}

}  // namespace tern
