#include "formats/quant/checkpoint_layouts.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <cstring>

namespace tern {

namespace {

constexpr int kAwqOrder[8] = {0, 2, 4, 6, 1, 3, 5, 7};  // nibble i holds output column 8j + kAwqOrder[i]

OwnedTensor make_tensor(const std::string& name, DType dt, std::vector<int64_t> shape) {
  OwnedTensor t{name, dt, std::move(shape), {}};
  int64_t n = 1;
  for (int64_t d : t.shape) n *= d;
  t.bytes.assign(size_t(n) * dtype_size(dt), 0);
  return t;
}

template <typename T>
T* as(OwnedTensor& t) {
  return reinterpret_cast<T*>(t.bytes.data());
}

OwnedTensor f16_tensor(const std::string& name, std::vector<int64_t> shape, const std::vector<float>& v) {
  OwnedTensor t = make_tensor(name, DType::F16, std::move(shape));
  for (size_t i = 0; i < v.size(); ++i) as<uint16_t>(t)[i] = f32_to_f16(v[i]);
  return t;
}

// [rows, groups] scales -> [groups, rows] (AWQ and GPTQ store them input-major).
std::vector<float> transpose(const std::vector<float>& v, int64_t rows, int64_t groups) {
  std::vector<float> out(v.size());
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t g = 0; g < groups; ++g) out[size_t(g * rows + r)] = v[size_t(r * groups + g)];
  return out;
}

Status layout_error(const std::string& prefix, const std::string& what) {
  return Status::error(fmt::format("{}: {}", prefix, what));
}

Result<std::vector<OwnedTensor>> pack_awq(const QuantizedLinear& ql, const std::string& p) {
  const int64_t rows = ql.rows, cols = ql.cols, ng = ql.n_groups();
  if (ql.bits != 4 || ql.fp8) return layout_error(p, "AWQ stores 4-bit weights only");
  if (rows % 8) return layout_error(p, fmt::format("AWQ packs 8 output columns per int32; {} is not a multiple of 8", rows));
  if (!ql.g_idx.empty()) return layout_error(p, "AWQ has no act-order (g_idx)");
  std::vector<OwnedTensor> out;
  out.push_back(make_tensor(p + ".qweight", DType::I32, {cols, rows / 8}));
  out.push_back(make_tensor(p + ".qzeros", DType::I32, {ng, rows / 8}));
  uint32_t* qw = as<uint32_t>(out[0]);
  uint32_t* qz = as<uint32_t>(out[1]);
  for (int64_t c = 0; c < cols; ++c)
    for (int64_t j = 0; j < rows / 8; ++j) {
      uint32_t v = 0;
      for (int i = 0; i < 8; ++i) v |= uint32_t(ql.q[size_t((8 * j + kAwqOrder[i]) * cols + c)] & 0xf) << (4 * i);
      qw[c * (rows / 8) + j] = v;
    }
  for (int64_t g = 0; g < ng; ++g)
    for (int64_t j = 0; j < rows / 8; ++j) {
      uint32_t v = 0;
      for (int i = 0; i < 8; ++i) v |= (uint32_t(ql.zero_at(8 * j + kAwqOrder[i], g)) & 0xf) << (4 * i);
      qz[g * (rows / 8) + j] = v;
    }
  out.push_back(f16_tensor(p + ".scales", {ng, rows}, transpose(ql.scales, rows, ng)));
  return out;
}

Result<std::vector<OwnedTensor>> pack_gptq(const QuantizedLinear& ql, const QuantConfig& cfg, const std::string& p) {
  const int64_t rows = ql.rows, cols = ql.cols, ng = ql.n_groups();
  const int b = ql.bits, pf = 32 / b;
  const uint32_t mask = (1u << b) - 1;
  if ((b != 4 && b != 8) || ql.fp8) return layout_error(p, "GPTQ layout: 4 or 8-bit integer weights only");
  if (cols % pf || rows % pf) return layout_error(p, fmt::format("GPTQ packs {} values per int32 along both dimensions", pf));
  // v1 stores zero - 1, so zero 0 cannot be written: such groups (all weights >= 0) move up one code.
  const int shift_v1 = cfg.gptq_v2 ? 0 : 1;
  auto zero = [&](int64_t r, int64_t g) { return std::max(int(ql.zero_at(r, g)), shift_v1); };
  auto code = [&](int64_t r, int64_t c) {
    const int64_t g = ql.group_of(c);
    const int bump = int(ql.zero_at(r, g)) < shift_v1 ? shift_v1 : 0;
    return std::min<uint32_t>(uint32_t(ql.q[size_t(r * cols + c)]) + uint32_t(bump), mask);
  };
  std::vector<OwnedTensor> out;
  out.push_back(make_tensor(p + ".qweight", DType::I32, {cols / pf, rows}));
  out.push_back(make_tensor(p + ".qzeros", DType::I32, {ng, rows / pf}));
  uint32_t* qw = as<uint32_t>(out[0]);
  uint32_t* qz = as<uint32_t>(out[1]);
  for (int64_t i = 0; i < cols / pf; ++i)
    for (int64_t r = 0; r < rows; ++r) {
      uint32_t v = 0;
      for (int t = 0; t < pf; ++t) v |= code(r, i * pf + t) << (b * t);
      qw[i * rows + r] = v;
    }
  for (int64_t g = 0; g < ng; ++g)
    for (int64_t j = 0; j < rows / pf; ++j) {
      uint32_t v = 0;
      for (int t = 0; t < pf; ++t) v |= (uint32_t(zero(j * pf + t, g) - shift_v1) & mask) << (b * t);
      qz[g * (rows / pf) + j] = v;
    }
  out.push_back(f16_tensor(p + ".scales", {ng, rows}, transpose(ql.scales, rows, ng)));
  out.push_back(make_tensor(p + ".g_idx", DType::I32, {cols}));
  for (int64_t c = 0; c < cols; ++c) as<int32_t>(out.back())[c] = int32_t(ql.group_of(c));
  return out;
}

Result<std::vector<OwnedTensor>> pack_ct(const QuantizedLinear& ql, const QuantConfig& cfg, const std::string& p) {
  const int64_t rows = ql.rows, cols = ql.cols, ng = ql.fp8 ? 1 : ql.n_groups();
  if (!ql.symmetric && cfg.ct_format != "pack-quantized")
    return layout_error(p, "compressed-tensors: asymmetric weights need pack-quantized");
  if (!ql.g_idx.empty()) return layout_error(p, "compressed-tensors: act-order is not supported");
  std::vector<OwnedTensor> out;
  if (cfg.ct_format == "float-quantized" || cfg.ct_format == "int-quantized") {
    const bool fp8 = cfg.ct_format == "float-quantized";
    if (fp8 != ql.fp8 || ql.bits != 8 || ng != 1) return layout_error(p, "layer does not match " + cfg.ct_format);
    out.push_back(make_tensor(p + ".weight", fp8 ? DType::F8_E4M3 : DType::I8, {rows, cols}));
    for (size_t i = 0; i < ql.q.size(); ++i) out[0].bytes[i] = fp8 ? ql.q[i] : uint8_t(int8_t(int(ql.q[i]) - 128));
  } else {
    const int b = ql.bits, pf = 32 / b;
    if ((b != 4 && b != 8) || ql.fp8) return layout_error(p, "pack-quantized: 4 or 8-bit integer weights only");
    if (cols % pf) return layout_error(p, fmt::format("pack-quantized packs {} inputs per int32", pf));
    out.push_back(make_tensor(p + ".weight_packed", DType::I32, {rows, cols / pf}));
    uint32_t* w = as<uint32_t>(out[0]);
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t j = 0; j < cols / pf; ++j) {
        uint32_t v = 0;
        for (int t = 0; t < pf; ++t) v |= uint32_t(ql.q[size_t(r * cols + j * pf + t)]) << (b * t);
        w[r * (cols / pf) + j] = v;
      }
  }
  if (ng > 1) {
    // Group scales in f16 (as AutoGPTQ stores them; f32 would add 0.125 bits per weight at group 128).
    out.push_back(f16_tensor(p + ".weight_scale", {rows, ng}, ql.scales));
  } else {
    OwnedTensor scale = make_tensor(p + ".weight_scale", DType::F32, {rows, ng});
    std::memcpy(scale.bytes.data(), ql.scales.data(), scale.bytes.size());
    out.push_back(std::move(scale));
  }
  if (!ql.symmetric) {
    // Zero points [rows, groups] as unsigned codes, packed along the OUTPUT dimension (compressed-tensors
    // pack_to_int32(zero_point, packed_dim=0)): int32 [ceil(rows / pf), groups], value t of word (j, g) is
    // the zero point of row j * pf + t.
    const int b = ql.bits, pf = 32 / b;
    const int64_t prow = (rows + pf - 1) / pf;
    out.push_back(make_tensor(p + ".weight_zero_point", DType::I32, {prow, ng}));
    uint32_t* z = as<uint32_t>(out.back());
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t g = 0; g < ng; ++g)
        z[(r / pf) * ng + g] |= (uint32_t(ql.zero_at(r, g)) & ((1u << b) - 1)) << (b * (r % pf));
  }
  if (cfg.ct_format == "pack-quantized") {
    out.push_back(make_tensor(p + ".weight_shape", DType::I64, {2}));
    as<int64_t>(out.back())[0] = rows, as<int64_t>(out.back())[1] = cols;
  }
  return out;
}

// ---- reading ----

Result<const TensorInfo*> need(const SafetensorsStore& s, const std::string& name, std::initializer_list<DType> dts,
                               const std::vector<int64_t>& shape) {
  const TensorInfo* t = s.find(name);
  if (!t) return Status::error(fmt::format("quantized checkpoint is missing tensor '{}'", name));
  bool ok = false;
  for (DType d : dts) ok |= t->dtype == d;
  if (!ok) return Status::error(fmt::format("{}: tensor '{}': dtype {} is not what the layout stores", t->file, name,
                                            dtype_safetensors_name(t->dtype)));
  if (t->shape != shape)
    return Status::error(fmt::format("{}: tensor '{}': shape [{}] but the layout and config imply [{}]", t->file, name,
                                     fmt::join(t->shape, ", "), fmt::join(shape, ", ")));
  return t;
}

uint32_t u32_at(const TensorInfo* t, int64_t i) {
  uint32_t v;
  std::memcpy(&v, static_cast<const char*>(t->data) + i * 4, 4);
  return v;
}

constexpr std::initializer_list<DType> kScaleTypes = {DType::F16, DType::BF16, DType::F32};

// Symmetric when every zero point is the midpoint (the layouts always store zero points).
void settle_symmetry(QuantizedLinear* ql) {
  const float mid = float(1 << (ql->bits - 1));
  for (float z : ql->zeros)
    if (z != mid) return;
  ql->zeros.clear();
  ql->symmetric = true;
}

Status group_count(const QuantConfig& cfg, int64_t cols, const std::string& p, int64_t* ng) {
  if (cfg.group > 0 && cols % cfg.group) return layout_error(p, fmt::format("group_size {} does not divide {} inputs", cfg.group, cols));
  *ng = cfg.group > 0 ? cols / cfg.group : 1;
  return Status::ok();
}

Result<QuantizedLinear> unpack_awq(const SafetensorsStore& s, const QuantConfig& cfg, const std::string& p,
                                   int64_t rows, int64_t cols) {
  int64_t ng = 1;
  TERN_RETURN_IF_ERROR(group_count(cfg, cols, p, &ng));
  if (rows % 8) return layout_error(p, "AWQ output features must be a multiple of 8");
  TERN_ASSIGN_OR_RETURN(const TensorInfo* qw, need(s, p + ".qweight", {DType::I32}, {cols, rows / 8}));
  TERN_ASSIGN_OR_RETURN(const TensorInfo* qz, need(s, p + ".qzeros", {DType::I32}, {ng, rows / 8}));
  TERN_ASSIGN_OR_RETURN(const TensorInfo* sc, need(s, p + ".scales", kScaleTypes, {ng, rows}));
  QuantizedLinear ql;
  ql.bits = 4, ql.group = cfg.group, ql.symmetric = false, ql.rows = rows, ql.cols = cols;
  ql.q.resize(size_t(rows * cols));
  ql.scales.resize(size_t(rows * ng));
  ql.zeros.resize(size_t(rows * ng));
  for (int64_t c = 0; c < cols; ++c)
    for (int64_t j = 0; j < rows / 8; ++j) {
      const uint32_t v = u32_at(qw, c * (rows / 8) + j);
      for (int i = 0; i < 8; ++i) ql.q[size_t((8 * j + kAwqOrder[i]) * cols + c)] = uint8_t((v >> (4 * i)) & 0xf);
    }
  for (int64_t g = 0; g < ng; ++g)
    for (int64_t j = 0; j < rows / 8; ++j) {
      const uint32_t v = u32_at(qz, g * (rows / 8) + j);
      for (int i = 0; i < 8; ++i) ql.zeros[size_t((8 * j + kAwqOrder[i]) * ng + g)] = float((v >> (4 * i)) & 0xf);
    }
  for (int64_t g = 0; g < ng; ++g)
    for (int64_t r = 0; r < rows; ++r) ql.scales[size_t(r * ng + g)] = load_as_f32(sc->data, sc->dtype, size_t(g * rows + r));
  settle_symmetry(&ql);
  return ql;
}

Result<QuantizedLinear> unpack_gptq(const SafetensorsStore& s, const QuantConfig& cfg, const std::string& p,
                                    int64_t rows, int64_t cols) {
  const int b = cfg.bits, pf = 32 / b;
  const uint32_t mask = (1u << b) - 1;
  const int64_t ng = cfg.group > 0 ? (cols + cfg.group - 1) / cfg.group : 1;
  if (cols % pf || rows % pf) return layout_error(p, fmt::format("GPTQ packs {} values per int32 along both dimensions", pf));
  TERN_ASSIGN_OR_RETURN(const TensorInfo* qw, need(s, p + ".qweight", {DType::I32}, {cols / pf, rows}));
  TERN_ASSIGN_OR_RETURN(const TensorInfo* qz, need(s, p + ".qzeros", {DType::I32}, {ng, rows / pf}));
  TERN_ASSIGN_OR_RETURN(const TensorInfo* sc, need(s, p + ".scales", kScaleTypes, {ng, rows}));
  QuantizedLinear ql;
  ql.bits = b, ql.group = cfg.group, ql.symmetric = false, ql.rows = rows, ql.cols = cols;
  if (s.find(p + ".g_idx")) {
    TERN_ASSIGN_OR_RETURN(const TensorInfo* gi, need(s, p + ".g_idx", {DType::I32}, {cols}));
    bool trivial = true;
    ql.g_idx.resize(size_t(cols));
    for (int64_t c = 0; c < cols; ++c) {
      const int32_t g = int32_t(u32_at(gi, c));
      if (g < 0 || g >= ng) return layout_error(p, fmt::format("g_idx[{}] = {} is outside [0, {})", c, g, ng));
      ql.g_idx[size_t(c)] = g;
      trivial &= cfg.group > 0 ? g == c / cfg.group : g == 0;
    }
    if (trivial) ql.g_idx.clear();
  }
  ql.q.resize(size_t(rows * cols));
  ql.scales.resize(size_t(rows * ng));
  ql.zeros.resize(size_t(rows * ng));
  for (int64_t i = 0; i < cols / pf; ++i)
    for (int64_t r = 0; r < rows; ++r) {
      const uint32_t v = u32_at(qw, i * rows + r);
      for (int t = 0; t < pf; ++t) ql.q[size_t(r * cols + i * pf + t)] = uint8_t((v >> (b * t)) & mask);
    }
  const uint32_t offset = cfg.gptq_v2 ? 0 : 1;
  for (int64_t g = 0; g < ng; ++g)
    for (int64_t j = 0; j < rows / pf; ++j) {
      const uint32_t v = u32_at(qz, g * (rows / pf) + j);
      for (int t = 0; t < pf; ++t) ql.zeros[size_t((j * pf + t) * ng + g)] = float(((v >> (b * t)) & mask) + offset);
    }
  for (int64_t g = 0; g < ng; ++g)
    for (int64_t r = 0; r < rows; ++r) ql.scales[size_t(r * ng + g)] = load_as_f32(sc->data, sc->dtype, size_t(g * rows + r));
  settle_symmetry(&ql);
  return ql;
}

Result<QuantizedLinear> unpack_ct(const SafetensorsStore& s, const QuantConfig& cfg, const std::string& p,
                                  int64_t rows, int64_t cols) {
  int64_t ng = 1;
  TERN_RETURN_IF_ERROR(group_count(cfg, cols, p, &ng));
  QuantizedLinear ql;
  ql.bits = cfg.bits, ql.group = cfg.group, ql.symmetric = true, ql.fp8 = cfg.fp8, ql.rows = rows, ql.cols = cols;
  ql.q.resize(size_t(rows * cols));
  if (cfg.ct_format == "pack-quantized") {
    const int b = cfg.bits, pf = 32 / b;
    const uint32_t mask = (1u << b) - 1;
    if (cols % pf) return layout_error(p, fmt::format("pack-quantized packs {} inputs per int32", pf));
    TERN_ASSIGN_OR_RETURN(const TensorInfo* wp, need(s, p + ".weight_packed", {DType::I32}, {rows, cols / pf}));
    if (const TensorInfo* shape = s.find(p + ".weight_shape")) {
      TERN_ASSIGN_OR_RETURN(shape, need(s, p + ".weight_shape", {DType::I64, DType::I32}, {2}));
      if (int64_t(load_as_f32(shape->data, shape->dtype, 0)) != rows || int64_t(load_as_f32(shape->data, shape->dtype, 1)) != cols)
        return layout_error(p, "weight_shape does not match the config");
    }
    if (!cfg.symmetric) {
      const int64_t prow = (rows + pf - 1) / pf;
      TERN_ASSIGN_OR_RETURN(const TensorInfo* zp, need(s, p + ".weight_zero_point", {DType::I32}, {prow, ng}));
      ql.symmetric = false;
      ql.zeros.resize(size_t(rows * ng));
      for (int64_t r = 0; r < rows; ++r)
        for (int64_t g = 0; g < ng; ++g)
          ql.zeros[size_t(r * ng + g)] = float((u32_at(zp, (r / pf) * ng + g) >> (b * (r % pf))) & mask);
    } else if (s.find(p + ".weight_zero_point")) {
      return layout_error(p, "weight_zero_point of a symmetric scheme");
    }
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t j = 0; j < cols / pf; ++j) {
        const uint32_t v = u32_at(wp, r * (cols / pf) + j);
        for (int t = 0; t < pf; ++t) ql.q[size_t(r * cols + j * pf + t)] = uint8_t((v >> (b * t)) & mask);
      }
  } else {
    const bool fp8 = cfg.ct_format == "float-quantized";
    if (ng != 1) return layout_error(p, cfg.ct_format + " weights need one scale per output channel");
    TERN_ASSIGN_OR_RETURN(const TensorInfo* w, need(s, p + ".weight", {fp8 ? DType::F8_E4M3 : DType::I8}, {rows, cols}));
    const uint8_t* src = static_cast<const uint8_t*>(w->data);
    for (size_t i = 0; i < ql.q.size(); ++i) ql.q[i] = fp8 ? src[i] : uint8_t(int(int8_t(src[i])) + 128);
  }
  const TensorInfo* sc = s.find(p + ".weight_scale");
  const bool per_tensor = sc && sc->numel() == 1 && ng == 1;  // strategy "tensor" scale [1]
  if (!per_tensor) { TERN_ASSIGN_OR_RETURN(sc, need(s, p + ".weight_scale", kScaleTypes, {rows, ng})); }
  ql.scales.resize(size_t(rows * ng));
  for (size_t i = 0; i < ql.scales.size(); ++i) ql.scales[i] = load_as_f32(sc->data, sc->dtype, per_tensor ? 0 : i);
  return ql;
}

}  // namespace

Result<std::vector<OwnedTensor>> pack_checkpoint_linear(const QuantizedLinear& ql, const QuantConfig& all,
                                                        const std::string& prefix) {
  const QuantConfig cfg = all.for_module(prefix);
  if (cfg.method == QuantMethod::CompressedTensors && !ql.fp8 &&
      (ql.bits != cfg.bits || ql.symmetric != cfg.symmetric || std::max(ql.group, 0) != std::max(cfg.group, 0)))
    return layout_error(prefix, fmt::format("quantized as {}-bit group {}{} but its config group says {}-bit group {}{}", ql.bits,
                                            ql.group, ql.symmetric ? "" : " asymmetric", cfg.bits, cfg.group,
                                            cfg.symmetric ? "" : " asymmetric"));
  switch (cfg.method) {
    case QuantMethod::Awq: return pack_awq(ql, prefix);
    case QuantMethod::Gptq: return pack_gptq(ql, cfg, prefix);
    case QuantMethod::CompressedTensors: return pack_ct(ql, cfg, prefix);
    default: return layout_error(prefix, "no quantization method");
  }
}

std::vector<std::string> checkpoint_tensor_names(const QuantConfig& all, const std::string& p) {
  const QuantConfig cfg = all.for_module(p);
  switch (cfg.method) {
    case QuantMethod::Awq: return {p + ".qweight", p + ".qzeros", p + ".scales"};
    case QuantMethod::Gptq: return {p + ".qweight", p + ".qzeros", p + ".scales", p + ".g_idx"};
    case QuantMethod::CompressedTensors:
      if (cfg.ct_format == "pack-quantized") {
        if (!cfg.symmetric) return {p + ".weight_packed", p + ".weight_scale", p + ".weight_shape", p + ".weight_zero_point"};
        return {p + ".weight_packed", p + ".weight_scale", p + ".weight_shape"};
      }
      return {p + ".weight", p + ".weight_scale"};
    default: return {};
  }
}

bool has_quantized_linear(const SafetensorsStore& store, const QuantConfig& cfg, const std::string& prefix) {
  if (cfg.method == QuantMethod::CompressedTensors) return store.find(prefix + ".weight_scale") != nullptr;
  const auto names = checkpoint_tensor_names(cfg, prefix);
  return !names.empty() && store.find(names.front()) != nullptr;
}

Result<QuantizedLinear> unpack_checkpoint_linear(const SafetensorsStore& store, const QuantConfig& all,
                                                 const std::string& prefix, int64_t rows, int64_t cols) {
  const QuantConfig cfg = all.for_module(prefix);
  switch (cfg.method) {
    case QuantMethod::Awq: return unpack_awq(store, cfg, prefix, rows, cols);
    case QuantMethod::Gptq: return unpack_gptq(store, cfg, prefix, rows, cols);
    case QuantMethod::CompressedTensors: return unpack_ct(store, cfg, prefix, rows, cols);
    default: return layout_error(prefix, "no quantization method");
  }
}

}  // namespace tern
