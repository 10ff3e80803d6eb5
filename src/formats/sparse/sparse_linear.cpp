#include "formats/sparse/sparse_linear.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <bit>
#include <cstring>

namespace tern {

namespace {

// Per mask byte: its kept columns, and whether each nibble keeps exactly 2 of its 4. A table, because the
// loader checks every byte of every mask (150 MB for a 1B model) and this file is built for baseline
// x86-64, where std::popcount is a libgcc call per byte.
struct MaskByteTable {
  uint8_t bits[256];
  bool two_of_four[256];
};
constexpr MaskByteTable make_mask_byte_table() {
  MaskByteTable t{};
  for (int b = 0; b < 256; ++b) {
    t.bits[b] = uint8_t(std::popcount(unsigned(b)));
    t.two_of_four[b] = std::popcount(unsigned(b & 0xf)) == 2 && std::popcount(unsigned(b >> 4)) == 2;
  }
  return t;
}
constexpr MaskByteTable kMaskByte = make_mask_byte_table();

Status bad(const TensorInfo& t, const std::string& what) {
  return Status::error(fmt::format("{}: tensor '{}': {}", t.file, t.name, what));
}

Result<const TensorInfo*> need(const TensorSource& store, const std::string& name, const std::string& why) {
  const TensorInfo* t = store.find(name);
  if (!t) return Status::error(fmt::format("{}: missing tensor '{}' ({})", store.source(), name, why));
  return t;
}

int64_t int_at(const TensorInfo& t, int64_t i) {
  if (t.dtype == DType::I64) {
    int64_t v;
    std::memcpy(&v, static_cast<const char*>(t.data) + i * 8, 8);
    return v;
  }
  int32_t v;
  std::memcpy(&v, static_cast<const char*>(t.data) + i * 4, 4);
  return v;
}

bool is_int(const TensorInfo& t) { return t.dtype == DType::I64 || t.dtype == DType::I32; }

}  // namespace

bool has_sparse_linear(const TensorSource& store, const QuantConfig& cfg, const std::string& module) {
  return cfg.sparsity.enabled() && store.find(module + ".bitmask") != nullptr;
}

std::vector<std::string> sparse_tensor_names(const std::string& module) {
  return {module + ".shape", module + ".compressed", module + ".bitmask", module + ".row_offsets",
          module + ".weight_scale"};
}

Result<WeightMatrix> bind_sparse_linear(const TensorSource& store, const QuantConfig& cfg, const std::string& module,
                                        int64_t rows, int64_t cols, WeightArena& arena) {
  const bool two_four = cfg.sparsity.format == SparseFormat::Bitmask24;
  const std::string why = fmt::format("{} module '{}'", sparse_format_name(cfg.sparsity.format), module);
  TERN_ASSIGN_OR_RETURN(const TensorInfo* shape, need(store, module + ".shape", why));
  TERN_ASSIGN_OR_RETURN(const TensorInfo* values, need(store, module + ".compressed", why));
  TERN_ASSIGN_OR_RETURN(const TensorInfo* mask, need(store, module + ".bitmask", why));

  if (!is_int(*shape) || shape->numel() != 2)
    return bad(*shape, "expected 2 integers (the dense [rows, cols])");
  if (int_at(*shape, 0) != rows || int_at(*shape, 1) != cols)
    return bad(*shape, fmt::format("[{}, {}] but the config implies [{}, {}]", int_at(*shape, 0), int_at(*shape, 1),
                                   rows, cols));
  const int64_t stride = (cols + 7) / 8;
  if ((mask->dtype != DType::U8 && mask->dtype != DType::I8) || mask->shape != std::vector<int64_t>{rows, stride})
    return bad(*mask, fmt::format("expected uint8 [{}, {}] (one bit per weight), got {} [{}]", rows, stride,
                                  dtype_safetensors_name(mask->dtype), fmt::join(mask->shape, ", ")));

  // A sparse LM head (tern sparsify --sparse-lm-head) is int-quantized with the linears unless the
  // config ignores it: compressed-tensors' "Linear" target covers it, where QuantConfig::targets only
  // counts the decoder's own linears.
  const bool quantized = cfg.quantized() && (cfg.targets(module) || (module == "lm_head" && !cfg.ignores(module)));
  if (quantized) {
    const QuantConfig mc = cfg.for_module(module);
    if (mc.fp8 || mc.bits != 8 || mc.group != 0 || !mc.symmetric)
      return Status::error(fmt::format("{}: module '{}': sparse weights are supported as bf16 or int8 with one "
                                       "symmetric scale per output channel", store.source(), module));
    if (values->dtype != DType::I8) return bad(*values, "expected int8 values (the module is int-quantized)");
  } else if (values->dtype != DType::BF16) {
    return bad(*values, fmt::format("dtype {} is not supported for sparse values (BF16, or I8 when quantized)",
                                    dtype_safetensors_name(values->dtype)));
  }
  const int64_t nnz = values->numel();
  if (two_four) {
    if (cols % 4 != 0) return bad(*mask, fmt::format("2:4 needs the columns ({}) to be a multiple of 4", cols));
    if (values->shape != std::vector<int64_t>{rows, cols / 2})
      return bad(*values, fmt::format("shape [{}] but 2:4 of [{}, {}] keeps [{}, {}]", fmt::join(values->shape, ", "),
                                      rows, cols, rows, cols / 2));
  } else if (values->shape.size() != 1) {
    return bad(*values, "expected a 1-D tensor of the kept values");
  }

  // Row offsets: read (sparse-bitmask) or implied (2:4), then checked against every row's popcount.
  auto* offsets = arena.allocate_array<int64_t>(size_t(rows));
  const TensorInfo* row_offsets = nullptr;
  if (!two_four) {
    TERN_ASSIGN_OR_RETURN(row_offsets, need(store, module + ".row_offsets", why));
    if (!is_int(*row_offsets) || row_offsets->shape != std::vector<int64_t>{rows})
      return bad(*row_offsets, fmt::format("expected {} integers (one per row)", rows));
  }
  const auto* bits = static_cast<const uint8_t*>(mask->data);
  const uint8_t last_byte_mask = cols % 8 ? uint8_t((1u << (cols % 8)) - 1) : uint8_t(0xff);
  int64_t total = 0;
  for (int64_t r = 0; r < rows; ++r) {
    offsets[r] = row_offsets ? int_at(*row_offsets, r) : r * (cols / 2);
    if (offsets[r] != total)
      return bad(row_offsets ? *row_offsets : *mask,
                 fmt::format("row {} starts at value {} but the bitmask's earlier rows hold {}", r, offsets[r], total));
    const uint8_t* row = bits + r * stride;
    if (row[stride - 1] & ~last_byte_mask) return bad(*mask, fmt::format("row {} has bits past column {}", r, cols));
    int64_t count = 0;
    for (int64_t b = 0; b < stride; ++b) {
      count += kMaskByte.bits[row[b]];
      if (two_four && !kMaskByte.two_of_four[row[b]])
        return bad(*mask, fmt::format("row {}, columns {}..{}: not 2 of every 4 kept", r, 8 * b, 8 * b + 7));
    }
    total += count;
  }
  if (total != nnz)
    return bad(*values, fmt::format("{} values but the bitmask keeps {}", nnz, total));

  WeightMatrix w;
  w.format = WeightFormat::SparseBitmask;
  w.dtype = values->dtype;
  w.data = values->data;
  w.rows = rows, w.cols = cols;
  w.mask = bits;
  w.row_offsets = offsets;
  w.nnz = nnz;
  w.quant_bytes = values->bytes + mask->bytes;
  if (quantized) {
    TERN_ASSIGN_OR_RETURN(const TensorInfo* scale, need(store, module + ".weight_scale", why));
    if (!dtype_is_float(scale->dtype) || scale->numel() != rows)
      return bad(*scale, fmt::format("expected {} float scales (one per output channel)", rows));
    auto* s = arena.allocate_array<float>(size_t(rows));
    for (int64_t r = 0; r < rows; ++r) s[r] = load_as_f32(scale->data, scale->dtype, size_t(r));
    w.scales = s;
    w.quant_bytes += size_t(rows) * sizeof(float);
  }
  return w;
}

WeightMatrix sparse_row_slice(const WeightMatrix& w, int64_t r0, int64_t rows) {
  WeightMatrix p = w;
  const int64_t stride = (w.cols + 7) / 8;
  p.rows = rows;
  p.mask = w.mask + r0 * stride;
  p.row_offsets = w.row_offsets + r0;
  if (w.scales) p.scales = w.scales + r0;
  const int64_t end = r0 + rows < w.rows ? w.row_offsets[r0 + rows] : w.nnz;
  p.quant_bytes = size_t(end - w.row_offsets[r0]) * dtype_size(w.dtype) + size_t(rows * stride) +
                  (w.scales ? size_t(rows) * sizeof(float) : 0);
  return p;
}

}  // namespace tern
