#include "kv/paged_kv_cache.h"

#include <fmt/format.h>

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
    : n_layers_(cfg.n_layers),
      n_kv_heads_(cfg.n_kv_heads),
      head_dim_(cfg.head_dim),
      block_size_(block_size),
      dtype_(dtype),
      elem_bytes_(elem_size(dtype)) {
  const size_t slots = size_t(block_size) * size_t(n_kv_heads_);
  scale_offset_ = slots * size_t(head_dim_) * elem_bytes_;
  part_bytes_ = align64(scale_offset_ + (has_scales(dtype) ? slots * sizeof(float) : 0));
  block_bytes_ = part_bytes_ * 2 * size_t(n_layers_);
}

size_t PagedKvCache::block_bytes_for(const ModelConfig& cfg, int block_size, KvDType dtype) {
  return PagedKvCache(cfg, block_size, dtype).block_bytes();
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

uint8_t* PagedKvCache::row_ptr(int layer, bool value, const int32_t* block_table, int64_t pos, int kv_head,
                               float** scale) const {
  const size_t block = size_t(block_table[pos / block_size_]);
  const size_t slot_head = size_t(pos % block_size_) * size_t(n_kv_heads_) + size_t(kv_head);
  uint8_t* part = data_.get() + block * block_bytes_ + (size_t(2 * layer) + (value ? 1 : 0)) * part_bytes_;
  *scale = reinterpret_cast<float*>(part + scale_offset_) + slot_head;
  return part + slot_head * size_t(head_dim_) * elem_bytes_;
}

void PagedKvCache::write(const CpuFeatures& cpu, int layer, const int32_t* block_table, int64_t pos0, int64_t n,
                         const float* k, const float* v) {
  const cpu::KvRowCodec codec = cpu::kv_row_codec(dtype_, cpu);
  const int64_t row = int64_t(n_kv_heads_) * head_dim_;
  for (int64_t i = 0; i < n; ++i) {
    for (int g = 0; g < n_kv_heads_; ++g) {
      float* ks = nullptr;
      float* vs = nullptr;
      uint8_t* kd = row_ptr(layer, false, block_table, pos0 + i, g, &ks);
      uint8_t* vd = row_ptr(layer, true, block_table, pos0 + i, g, &vs);
      float sk = 1.f, sv = 1.f;
      codec.encode(k + i * row + int64_t(g) * head_dim_, head_dim_, kd, &sk);
      codec.encode(v + i * row + int64_t(g) * head_dim_, head_dim_, vd, &sv);
      if (codec.scaled) {
        std::memcpy(ks, &sk, sizeof(float));
        std::memcpy(vs, &sv, sizeof(float));
      }
    }
  }
}

cpu::PagedKvLayer PagedKvCache::layer(int l, const CpuFeatures& cpu) const {
  cpu::PagedKvLayer L;
  L.k = data_.get() + size_t(2 * l) * part_bytes_;
  L.v = L.k + part_bytes_;
  L.block_stride = block_bytes_;
  L.scale_offset = scale_offset_;
  L.block_size = block_size_;
  L.codec = cpu::kv_row_codec(dtype_, cpu);
  return L;
}

void PagedKvCache::read_row(int layer, bool value, const int32_t* block_table, int64_t pos, int kv_head,
                            float* out) const {
  float* scale = nullptr;
  const uint8_t* src = row_ptr(layer, value, block_table, pos, kv_head, &scale);
  float s = 1.f;
  if (has_scales(dtype_)) std::memcpy(&s, scale, sizeof(float));
  cpu::kv_row_codec(dtype_, CpuFeatures{}).decode(src, s, head_dim_, out);
}

}  // namespace tern
