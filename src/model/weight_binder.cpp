#include "model/weight_binder.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <cstring>

#include "formats/quant/checkpoint_layouts.h"
#include "formats/quant/pack_weights.h"
#include "formats/sparse/sparse_linear.h"
#include "kernels/cpu/gguf_blocks.h"

namespace tern {

Result<const TensorInfo*> WeightBinder::take(const std::string& name, const std::vector<int64_t>& shape) {
  const TensorInfo* t = store_->find(name);
  if (!t) {
    return Status::error(fmt::format("{}: missing tensor '{}' (shape [{}] by the config{})", store_->source(), name,
                                     fmt::join(shape, ", "), store_->stored_name(name)));
  }
  if (t->shape != shape) {
    return Status::error(fmt::format("{}: tensor '{}': shape [{}] but the config implies [{}]", t->file, name,
                                     fmt::join(t->shape, ", "), fmt::join(shape, ", ")));
  }
  used_.insert(name);
  return t;
}

Result<WeightMatrix> WeightBinder::quantized_matrix(const std::string& module, int64_t rows, int64_t cols) {
  for (const auto& n : checkpoint_tensor_names(*quant_, module)) ignore_if_present(n);
  if (const WeightMatrix* cached = cache_ ? cache_->find(module, rows, cols) : nullptr) {
    if (record_) record_->add(module, *cached);
    return *cached;
  }
  TERN_ASSIGN_OR_RETURN(QuantizedLinear ql, unpack_checkpoint_linear(*safetensors_, *quant_, module, rows, cols));
  TERN_ASSIGN_OR_RETURN(WeightMatrix w, pack_for_kernels(ql, quant_->int8_activations, *arena_, module));
  ++cache_misses_;
  if (record_) record_->add(module, w);
  return w;
}

// A fused module written quantized (tern quantize writes Phi-3 qkv_proj, GLM-4 gate_up_proj and GPT-2's
// Conv1D c_attn as one linear [Σ rows, cols], Conv1D transposed to [out, in] as AutoGPTQ does): unpacked
// once, split by rows (codes, scales and zero points are per row), each part packed for the kernels.
Result<std::vector<WeightMatrix>> WeightBinder::quantized_parts(const std::string& module,
                                                                const std::vector<int64_t>& rows, int64_t total,
                                                                int64_t cols) {
  for (const auto& n : checkpoint_tensor_names(*quant_, module)) ignore_if_present(n);
  std::vector<WeightMatrix> out;
  for (size_t i = 0; cache_ && i < rows.size(); ++i) {
    const WeightMatrix* cached = cache_->find(fmt::format("{}[{}]", module, i), rows[i], cols);
    if (!cached) break;
    out.push_back(*cached);
  }
  if (cache_ && out.size() == rows.size()) {
    for (size_t i = 0; record_ && i < rows.size(); ++i) record_->add(fmt::format("{}[{}]", module, i), out[i]);
    return out;
  }
  out.clear();
  TERN_ASSIGN_OR_RETURN(QuantizedLinear all, unpack_checkpoint_linear(*safetensors_, *quant_, module, total, cols));
  int64_t r0 = 0;
  for (size_t i = 0; i < rows.size(); ++i) {
    QuantizedLinear part = all;
    const int64_t n = rows[i], ng = all.fp8 ? 1 : all.n_groups();
    part.rows = n;
    part.q.assign(all.q.begin() + r0 * cols, all.q.begin() + (r0 + n) * cols);
    part.scales.assign(all.scales.begin() + r0 * ng, all.scales.begin() + (r0 + n) * ng);
    if (!all.zeros.empty()) part.zeros.assign(all.zeros.begin() + r0 * ng, all.zeros.begin() + (r0 + n) * ng);
    TERN_ASSIGN_OR_RETURN(WeightMatrix w,
                          pack_for_kernels(part, quant_->int8_activations, *arena_, fmt::format("{}[{}]", module, i)));
    if (record_) record_->add(fmt::format("{}[{}]", module, i), w);
    out.push_back(w);
    r0 += n;
  }
  ++cache_misses_;
  return out;
}

bool WeightBinder::sparse_module(const std::string& name, std::string* module) const {
  constexpr std::string_view kSuffix = ".weight";
  if (!quant_ || !quant_->sparsity.enabled() || name.size() <= kSuffix.size() ||
      name.compare(name.size() - kSuffix.size(), kSuffix.size(), kSuffix) != 0)
    return false;
  *module = name.substr(0, name.size() - kSuffix.size());
  return has_sparse_linear(*store_, *quant_, *module);
}

Result<WeightMatrix> WeightBinder::sparse_matrix(const std::string& module, int64_t rows, int64_t cols) {
  TERN_ASSIGN_OR_RETURN(WeightMatrix w, bind_sparse_linear(*store_, *quant_, module, rows, cols, *arena_));
  for (const auto& n : sparse_tensor_names(module)) ignore_if_present(n);
  return w;
}

Result<WeightMatrix> WeightBinder::matrix(const std::string& name, int64_t rows, int64_t cols) {
  constexpr std::string_view kSuffix = ".weight";
  if (std::string module; sparse_module(name, &module)) return sparse_matrix(module, rows, cols);
  if (quant_ && quant_->quantized() && name.size() > kSuffix.size() &&
      name.compare(name.size() - kSuffix.size(), kSuffix.size(), kSuffix) == 0) {
    const std::string module = name.substr(0, name.size() - kSuffix.size());
    if (has_quantized_linear(*safetensors_, *quant_, module)) return quantized_matrix(module, rows, cols);
  }
  TERN_ASSIGN_OR_RETURN(const TensorInfo* t, take(name, {rows, cols}));
  if (t->stored_transposed) {
    return Status::error(fmt::format("{}: tensor '{}' is stored transposed, where [{}, {}] is expected", t->file,
                                     name, rows, cols));
  }
  if (t->gguf_type >= 0) return gguf_matrix(*t, 0, rows, cols);
  if (!dtype_is_float(t->dtype)) {
    return Status::error(fmt::format("{}: tensor '{}': dtype {} is not a dense weight type{}", t->file, name,
                                     dtype_safetensors_name(t->dtype),
                                     quant_ && quant_->quantized() ? "" : " (is quantization_config missing?)"));
  }
  return WeightMatrix{t->data, t->dtype, rows, cols};
}

WeightMatrix WeightBinder::gguf_matrix(const TensorInfo& t, int64_t row0, int64_t rows, int64_t cols) {
  // GGUF blocks never cross a row, so a row range is a byte range.
  const size_t row_bytes = t.bytes / size_t(t.stored_transposed ? t.shape[1] : t.shape[0]);
  WeightMatrix w;
  w.data = static_cast<const char*>(t.data) + size_t(row0) * row_bytes;
  w.rows = rows, w.cols = cols;
  w.format = WeightFormat::Gguf;
  w.gguf_type = t.gguf_type;
  w.quant_bytes = size_t(rows) * row_bytes;
  return w;
}

Result<std::vector<float>> WeightBinder::vector_f32(const std::string& name, int64_t n) {
  TERN_ASSIGN_OR_RETURN(const TensorInfo* t, take(name, {n}));
  std::vector<float> v(static_cast<size_t>(n));
  if (t->gguf_type >= 0) {
    gguf_dequantize_row(GgufType(t->gguf_type), t->data, v.data(), n);
    return v;
  }
  for (int64_t i = 0; i < n; ++i) v[size_t(i)] = load_as_f32(t->data, t->dtype, size_t(i));
  return v;
}

Result<std::vector<WeightMatrix>> WeightBinder::matrix_parts(const std::string& name, const std::vector<int64_t>& rows,
                                                             int64_t cols, bool transposed) {
  constexpr std::string_view kSuffix = ".weight";
  int64_t total = 0;
  for (int64_t r : rows) total += r;
  if (std::string module; sparse_module(name, &module)) {
    TERN_ASSIGN_OR_RETURN(WeightMatrix all, sparse_matrix(module, total, cols));
    std::vector<WeightMatrix> out;
    int64_t r0 = 0;
    for (int64_t r : rows) out.push_back(sparse_row_slice(all, r0, r)), r0 += r;
    return out;
  }
  if (quant_ && quant_->quantized() && name.size() > kSuffix.size() &&
      has_quantized_linear(*safetensors_, *quant_, name.substr(0, name.size() - kSuffix.size()))) {
    return quantized_parts(name.substr(0, name.size() - kSuffix.size()), rows, total, cols);
  }
  TERN_ASSIGN_OR_RETURN(const TensorInfo* t, take(name, transposed ? std::vector<int64_t>{cols, total}
                                                                   : std::vector<int64_t>{total, cols}));
  if (t->stored_transposed && !transposed) {
    return Status::error(fmt::format("{}: tensor '{}' is stored transposed, where [{}, {}] is expected", t->file,
                                     name, total, cols));
  }
  if (t->stored_transposed) transposed = false;  // already [total, cols] in memory
  if (t->gguf_type >= 0) {
    if (transposed) return Status::error(fmt::format("{}: tensor '{}': a GGUF block type cannot be transposed", t->file, name));
    std::vector<WeightMatrix> out;
    int64_t r0 = 0;
    for (int64_t r : rows) out.push_back(gguf_matrix(*t, r0, r, cols)), r0 += r;
    return out;
  }
  if (!dtype_is_float(t->dtype)) {
    return Status::error(fmt::format("{}: tensor '{}': dtype {} is not a dense weight type", t->file, name,
                                     dtype_safetensors_name(t->dtype)));
  }
  const size_t es = dtype_size(t->dtype);
  const char* base = static_cast<const char*>(t->data);
  if (transposed) {
    if (!arena_) return Status::error(fmt::format("tensor '{}': transposing needs the model's arena", name));
    // src: [cols, total] -> dst: [total, cols], element by element in the stored dtype.
    char* dst = static_cast<char*>(arena_->allocate(size_t(total) * size_t(cols) * es));
    for (int64_t i = 0; i < cols; ++i) {
      for (int64_t j = 0; j < total; ++j) std::memcpy(dst + (size_t(j) * size_t(cols) + size_t(i)) * es,
                                                      base + (size_t(i) * size_t(total) + size_t(j)) * es, es);
    }
    base = dst;
  }
  std::vector<WeightMatrix> out;
  int64_t r0 = 0;
  for (int64_t r : rows) {
    out.push_back(WeightMatrix{base + size_t(r0) * size_t(cols) * es, t->dtype, r, cols});
    r0 += r;
  }
  return out;
}

Result<std::vector<std::vector<float>>> WeightBinder::vector_parts(const std::string& name,
                                                                   const std::vector<int64_t>& n) {
  int64_t total = 0;
  for (int64_t k : n) total += k;
  TERN_ASSIGN_OR_RETURN(std::vector<float> all, vector_f32(name, total));
  std::vector<std::vector<float>> out;
  int64_t i0 = 0;
  for (int64_t k : n) {
    out.emplace_back(all.begin() + i0, all.begin() + i0 + k);
    i0 += k;
  }
  return out;
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
