#include "formats/gguf/gguf_hf_view.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <cstring>

namespace tern {

namespace {

void set_type(const GgufTensor& t, TensorInfo* info) {
  switch (t.type) {
    case GgufType::F32: info->dtype = DType::F32; break;
    case GgufType::F16: info->dtype = DType::F16; break;
    case GgufType::BF16: info->dtype = DType::BF16; break;
    default: info->gguf_type = int(t.type);
  }
}

}  // namespace

Result<std::unique_ptr<GgufHfView>> GgufHfView::open(const GgufFile& g, const GgufArch& arch, const ModelConfig& cfg) {
  auto v = std::unique_ptr<GgufHfView>(new GgufHfView());
  v->source_ = g.path();
  v->arch_ = &arch;
  for (const GgufTensor& t : g.tensors()) {
    if (t.name == "rope_freqs.weight") {
      const int64_t n = cfg.rope.rotary_dim / 2;
      if (t.ne.size() != 1 || t.ne[0] != n) {
        return g.error(fmt::format("tensor 'rope_freqs.weight': shape [{}], expected [{}] (rope dims / 2)",
                                   fmt::join(t.shape(), ", "), n));
      }
      v->rope_divisors_.resize(size_t(n));
      gguf_dequantize_row(t.type, t.data, v->rope_divisors_.data(), n);
      for (float d : v->rope_divisors_) {
        if (!(d > 0)) return g.error("tensor 'rope_freqs.weight': divisors must be positive");
      }
      continue;
    }
    GgufNameMatch m;
    if (!hf_name_from_gguf(arch, t.name, &m)) {
      return g.error(fmt::format("tensor '{}' is not part of a {} model (general.architecture {})", t.name, arch.hf,
                                 arch.gguf));
    }
    TensorInfo info;
    info.name = m.name;
    info.file = g.path();
    info.shape = t.shape();
    info.data = t.data;
    info.bytes = t.bytes;
    set_type(t, &info);
    switch (m.entry->quirk) {
      case GgufQuirk::kNone: break;
      case GgufQuirk::kRopeQ:
      case GgufQuirk::kRopeK: {
        // Rows (or bias elements) back to Hugging Face order, head by head.
        const int heads = m.entry->quirk == GgufQuirk::kRopeQ ? cfg.n_heads : cfg.n_kv_heads;
        const int64_t rows = info.shape.empty() ? 0 : info.shape[0];
        if (info.shape.size() > 2 || heads <= 0 || rows % heads != 0 || (rows / heads) % 2 != 0) {
          return g.error(fmt::format("tensor '{}': shape [{}] does not split into {} heads of even size", t.name,
                                     fmt::join(info.shape, ", "), heads));
        }
        const size_t rb = t.bytes / size_t(rows);
        auto buf = std::make_unique<uint8_t[]>(t.bytes);
        const auto* src = static_cast<const uint8_t*>(t.data);
        for (int64_t r = 0; r < rows; ++r) {
          std::memcpy(buf.get() + size_t(gguf_unpermute_row(r, rows / heads)) * rb, src + size_t(r) * rb, rb);
        }
        info.data = buf.get();
        v->owned_.push_back(std::move(buf));
        break;
      }
      case GgufQuirk::kNormPlusOne: {
        if (info.shape.size() != 1) return g.error(fmt::format("tensor '{}': a norm weight must be 1-D", t.name));
        const int64_t n = info.shape[0];
        auto buf = std::make_unique<uint8_t[]>(size_t(n) * sizeof(float));
        auto* f = reinterpret_cast<float*>(buf.get());
        gguf_dequantize_row(t.type, t.data, f, n);
        for (int64_t i = 0; i < n; ++i) f[i] -= 1.f;
        info.data = buf.get(), info.bytes = size_t(n) * sizeof(float);
        info.dtype = DType::F32, info.gguf_type = -1;
        v->owned_.push_back(std::move(buf));
        break;
      }
      case GgufQuirk::kConv1D:
        if (info.shape.size() == 2) {
          info.shape = {info.shape[1], info.shape[0]};
          info.stored_transposed = true;
        }
        break;
      case GgufQuirk::kRowVector:
        if (info.shape.size() == 1) info.shape = {1, info.shape[0]};
        break;
    }
    if (!m.experts()) {
      v->tensors_.push_back(std::move(info));
      continue;
    }
    // [E, rows, cols] -> E tensors [rows, cols] in place.
    if (info.shape.size() != 3 || info.shape[0] <= 0) {
      return g.error(fmt::format("tensor '{}': shape [{}], expected [experts, rows, cols]", t.name,
                                 fmt::join(info.shape, ", ")));
    }
    const int64_t n = info.shape[0];
    const size_t each = info.bytes / size_t(n);
    for (int64_t e = 0; e < n; ++e) {
      TensorInfo x = info;
      x.name = gguf_expert_name(m.name, int(e));
      x.shape = {info.shape[1], info.shape[2]};
      x.data = static_cast<const char*>(info.data) + size_t(e) * each;
      x.bytes = each;
      v->tensors_.push_back(std::move(x));
    }
  }
  for (size_t i = 0; i < v->tensors_.size(); ++i) {
    if (!v->index_.emplace(v->tensors_[i].name, i).second) {
      return g.error(fmt::format("two tensors map to '{}'", v->tensors_[i].name));
    }
  }
  return v;
}

const TensorInfo* GgufHfView::find(const std::string& name) const {
  auto it = index_.find(name);
  return it == index_.end() ? nullptr : &tensors_[it->second];
}

std::string GgufHfView::stored_name(const std::string& name) const {
  GgufNameMatch m;
  if (!gguf_name_from_hf(*arch_, name, &m)) return {};
  return fmt::format(", GGUF tensor '{}'", m.name);
}

}  // namespace tern
