#include "kv/paged_kv_cache.h"

#include <fmt/format.h>

#include <algorithm>
#include <cstring>

namespace tern {

namespace {

size_t align64(size_t n) { return (n + 63) & ~size_t(63); }

size_t elem_size(KvDType t) {
  switch (t) {
    case KvDType::F32: return 4;
    case KvDType::BF16: return 2;
    case KvDType::INT8:
    case KvDType::FP8: return 1;
  }
  return 4;
}

bool has_scales(KvDType t) { return t == KvDType::INT8 || t == KvDType::FP8; }

}  // namespace

PagedKvCache::PagedKvCache(const ModelConfig& cfg, int block_size, KvDType dtype)
    : n_layers_(cfg.n_layers), block_size_(block_size), dtype_(dtype), elem_bytes_(elem_size(dtype)) {
  const size_t bs = size_t(std::max(block_size, 0));
  size_t at = 0;
  auto part = [&](int kv_heads, int dim) {
    Part p;
    p.offset = at;
    p.dim = dim;
    const size_t slots = bs * size_t(kv_heads);
    p.scale_offset = slots * size_t(dim) * elem_bytes_;
    at += align64(p.scale_offset + (has_scales(dtype) ? slots * sizeof(float) : 0));
    return p;
  };
  layers_.resize(size_t(std::max(n_layers_, 0)));
  for (int l = 0; l < n_layers_; ++l) {
    Layer& L = layers_[size_t(l)];
    L.shape = kv_layer_shape(cfg, l);
    L.k = part(L.shape.kv_heads, L.shape.k_dim);
    L.v = L.shape.v_in_k ? L.k : part(L.shape.kv_heads, L.shape.v_dim);
  }
  block_bytes_ = at;
}

size_t PagedKvCache::block_bytes_for(const ModelConfig& cfg, int block_size, KvDType dtype) {
  return PagedKvCache(cfg, block_size, dtype).block_bytes();
}

size_t PagedKvCache::bytes_per_token() const {
  size_t n = 0;
  for (const Layer& L : layers_) {
    n += size_t(L.shape.values_per_token()) * elem_bytes_;
    if (has_scales(dtype_)) n += size_t(L.shape.scaled_rows_per_token()) * sizeof(float);
  }
  return n;
}

Status PagedKvCache::allocate(int64_t num_blocks) {
  if (block_size_ <= 0) return Status::error(fmt::format("KV block size must be positive (got {})", block_size_));
  if (num_blocks < 0) return Status::error("KV pool: negative block count");
  if (num_blocks <= num_blocks_) return Status::ok();
  const size_t bytes = size_t(num_blocks) * block_bytes_;
  auto* fresh = static_cast<uint8_t*>(std::aligned_alloc(64, align64(std::max<size_t>(bytes, 64))));
  if (!fresh) return Status::error(fmt::format("cannot allocate a KV pool of {} bytes", bytes));
  if (num_blocks_ > 0) std::memcpy(fresh, data_.get(), size_t(num_blocks_) * block_bytes_);
  data_.reset(fresh);
  num_blocks_ = num_blocks;
  return Status::ok();
}

uint8_t* PagedKvCache::row_ptr(const Part& part, int kv_heads, const int32_t* block_table, int64_t pos, int kv_head,
                               float** scale) const {
  const size_t block = size_t(block_table[pos / block_size_]);
  const size_t slot_head = size_t(pos % block_size_) * size_t(kv_heads) + size_t(kv_head);
  uint8_t* p = data_.get() + block * block_bytes_ + part.offset;
  *scale = reinterpret_cast<float*>(p + part.scale_offset) + slot_head;
  return p + slot_head * size_t(part.dim) * elem_bytes_;
}

void PagedKvCache::write(const CpuFeatures& cpu, int layer, const int32_t* block_table, int64_t pos0, int64_t n,
                         const float* k, const float* v) {
  const cpu::KvRowCodec codec = cpu::kv_row_codec(dtype_, cpu);
  const Layer& L = layers_[size_t(layer)];
  const int H = L.shape.kv_heads;
  auto put = [&](const Part& part, const float* rows) {
    const int64_t row = int64_t(H) * part.dim;
    for (int64_t i = 0; i < n; ++i) {
      for (int g = 0; g < H; ++g) {
        float* sp = nullptr;
        uint8_t* d = row_ptr(part, H, block_table, pos0 + i, g, &sp);
        float sc = 1.f;
        codec.encode(rows + i * row + int64_t(g) * part.dim, part.dim, d, &sc);
        if (codec.scaled) std::memcpy(sp, &sc, sizeof(float));
      }
    }
  };
  put(L.k, k);
  if (!L.shape.v_in_k) put(L.v, v);
}

cpu::PagedKvLayer PagedKvCache::layer(int l, const CpuFeatures& cpu) const {
  const Layer& L = layers_[size_t(l)];
  cpu::PagedKvLayer out;
  out.k = data_.get() + L.k.offset;
  out.v = data_.get() + L.v.offset;
  out.block_stride = block_bytes_;
  out.scale_offset = L.k.scale_offset;  // K and V parts have the same width here
  out.block_size = block_size_;
  out.codec = cpu::kv_row_codec(dtype_, cpu);
  return out;
}

cpu::LatentKvLayer PagedKvCache::latent_layer(int l, const CpuFeatures& cpu) const {
  const Layer& L = layers_[size_t(l)];
  cpu::LatentKvLayer out;
  out.data = data_.get() + L.k.offset;
  out.block_stride = block_bytes_;
  out.scale_offset = L.k.scale_offset;
  out.block_size = block_size_;
  out.dk = L.shape.k_dim;
  out.dv = L.shape.v_dim;
  out.codec = cpu::kv_row_codec(dtype_, cpu);
  return out;
}

void PagedKvCache::read_row(int layer, bool value, const int32_t* block_table, int64_t pos, int kv_head,
                            float* out) const {
  const Layer& L = layers_[size_t(layer)];
  const Part& part = value ? L.v : L.k;
  float* scale = nullptr;
  const uint8_t* src = row_ptr(part, L.shape.kv_heads, block_table, pos, kv_head, &scale);
  float s = 1.f;
  if (has_scales(dtype_)) std::memcpy(&s, scale, sizeof(float));
  const cpu::KvRowCodec codec = cpu::kv_row_codec(dtype_, CpuFeatures{});
  if (!value || !L.shape.v_in_k) {
    codec.decode(src, s, part.dim, out);
    return;
  }
  std::vector<float> row(size_t(part.dim));  // the latent's value: the first v_dim of the row
  codec.decode(src, s, part.dim, row.data());
  std::copy(row.begin(), row.begin() + L.shape.v_dim, out);
}

}  // namespace tern
