#include "formats/gguf/gguf_hf_view.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <sys/mman.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>

#include "formats/gguf/gguf_mla.h"

namespace tern {

namespace {

// The whole pages inside [p, p + bytes) of a read-only file mapping dropped from this process (they
// fault back in from the page cache if read again).
void release_file_pages(const void* p, size_t bytes) {
  const uintptr_t page = uintptr_t(sysconf(_SC_PAGESIZE));
  const uintptr_t begin = (uintptr_t(p) + page - 1) & ~(page - 1), end = (uintptr_t(p) + bytes) & ~(page - 1);
  if (end > begin) madvise(reinterpret_cast<void*>(begin), end - begin, MADV_DONTNEED);
}

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
  if (std::string(arch.gguf) == "deepseek2") TERN_RETURN_IF_ERROR(v->merge_kv_b(g, cfg));
  for (const GgufTensor& t : g.tensors()) {
    int layer = -1;
    if (std::sscanf(t.name.c_str(), "blk.%d.", &layer) == 1 &&
        (t.name == fmt::format("blk.{}.attn_k_b.weight", layer) || t.name == fmt::format("blk.{}.attn_v_b.weight", layer)) &&
        v->find(fmt::format("model.layers.{}.self_attn.kv_b_proj.weight", layer))) {
      continue;  // merged above
    }
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
        if (info.shape.empty() || info.shape.size() > 2 || rows <= 0 || heads <= 0 || rows % heads != 0 ||
            (rows / heads) % 2 != 0) {
          return g.error(fmt::format("tensor '{}': shape [{}] does not split into {} heads of even size", t.name,
                                     fmt::join(info.shape, ", "), heads));
        }
        const size_t rb = t.bytes / size_t(rows);
        auto buf = std::make_unique<uint8_t[]>(t.bytes);
        const auto* src = static_cast<const uint8_t*>(t.data);
        for (int64_t r = 0; r < rows; ++r) {
          std::memcpy(buf.get() + size_t(gguf_unpermute_row(r, rows / heads)) * rb, src + size_t(r) * rb, rb);
        }
        // The file's rows are not read again (the view hands out the copy): their pages leave this
        // process, so the copy replaces them in the resident set instead of doubling them.
        if (g.mapped()) release_file_pages(src, t.bytes);
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
  v->index_.clear();
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

bool GgufHfView::release_copy(const void* data) {
  for (auto& buf : owned_) {
    if (!buf || buf.get() != data) continue;
    for (TensorInfo& t : tensors_)
      if (t.data == data) t.data = nullptr;
    buf.reset();
    return true;
  }
  return false;
}

Status GgufHfView::merge_kv_b(const GgufFile& g, const ModelConfig& cfg) {
  const MlaKvbDims d{cfg.n_heads, cfg.mla.qk_nope_head_dim, cfg.mla.v_head_dim, cfg.mla.kv_lora_rank};
  for (int i = 0; i < cfg.n_layers; ++i) {
    const GgufTensor* k = g.tensor(fmt::format("blk.{}.attn_k_b.weight", i));
    const GgufTensor* vb = g.tensor(fmt::format("blk.{}.attn_v_b.weight", i));
    if (!k && !vb) continue;
    if (!k || !vb) {
      return g.error(fmt::format("tensor 'blk.{0}.attn_{1}_b.weight' is missing (attn_k_b and attn_v_b come together)", i,
                                 k ? 'v' : 'k'));
    }
    if (k->shape() != std::vector<int64_t>{d.heads, d.kv_lora, d.nope} ||
        vb->shape() != std::vector<int64_t>{d.heads, d.v, d.kv_lora}) {
      return g.error(fmt::format("tensors 'blk.{0}.attn_k_b.weight' [{1}] / 'blk.{0}.attn_v_b.weight' [{2}]: the "
                                 "metadata implies [{3}, {4}, {5}] / [{3}, {6}, {4}]", i, fmt::join(k->shape(), ", "),
                                 fmt::join(vb->shape(), ", "), d.heads, d.kv_lora, d.nope, d.v));
    }
    auto rows_f32 = [](const GgufTensor* t, int64_t rows, int64_t cols) {
      std::vector<float> out(size_t(rows * cols));
      const size_t rb = t->bytes / size_t(rows);
      for (int64_t r = 0; r < rows; ++r) {
        gguf_dequantize_row(t->type, static_cast<const char*>(t->data) + size_t(r) * rb, out.data() + r * cols, cols);
      }
      return out;
    };
    const std::vector<float> kf = rows_f32(k, d.heads * d.kv_lora, d.nope), vf = rows_f32(vb, d.heads * d.v, d.kv_lora);
    const std::vector<float> kv = mla_kv_b_merge(d, kf.data(), vf.data());
    auto buf = std::make_unique<uint8_t[]>(kv.size() * sizeof(float));
    std::memcpy(buf.get(), kv.data(), kv.size() * sizeof(float));
    TensorInfo info;
    info.name = fmt::format("model.layers.{}.self_attn.kv_b_proj.weight", i);
    info.file = g.path();
    info.shape = {d.heads * (d.nope + d.v), d.kv_lora};
    info.data = buf.get();
    info.bytes = kv.size() * sizeof(float);
    owned_.push_back(std::move(buf));
    index_.emplace(info.name, tensors_.size());
    tensors_.push_back(std::move(info));
  }
  return Status::ok();
}

std::string GgufHfView::stored_name(const std::string& name) const {
  GgufNameMatch m;
  if (!gguf_name_from_hf(*arch_, name, &m)) return {};
  return fmt::format(", GGUF tensor '{}'", m.name);
}

}  // namespace tern
