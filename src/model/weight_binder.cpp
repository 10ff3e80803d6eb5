#include "model/weight_binder.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

namespace tern {

Result<const TensorInfo*> WeightBinder::take(const std::string& name, const std::vector<int64_t>& shape) {
  const TensorInfo* t = store_->find(name);
  if (!t) return Status::error(fmt::format("checkpoint is missing tensor '{}'", name));
  if (t->shape != shape) {
    return Status::error(fmt::format("{}: tensor '{}': shape [{}] but the config implies [{}]", t->file, name,
                                     fmt::join(t->shape, ", "), fmt::join(shape, ", ")));
  }
  used_.insert(name);
  return t;
}

Result<WeightMatrix> WeightBinder::matrix(const std::string& name, int64_t rows, int64_t cols) {
  TERN_ASSIGN_OR_RETURN(const TensorInfo* t, take(name, {rows, cols}));
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
