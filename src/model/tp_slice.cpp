#include "model/tp_slice.h"

#include <fmt/format.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cstring>

#include "kernels/cpu/gguf_blocks.h"

namespace tern {

namespace {

// Bytes of one stored row of codes (the data array only).
size_t row_bytes(const WeightMatrix& w) {
  switch (w.format) {
    case WeightFormat::Dense: return size_t(w.cols) * dtype_size(w.dtype);
    case WeightFormat::Int8Channel:
    case WeightFormat::Fp8E4M3: return size_t(w.cols);
    case WeightFormat::Int4Group: return size_t(w.cols / 2);
    case WeightFormat::Gguf: return gguf_row_bytes(GgufType(w.gguf_type), w.cols);
    case WeightFormat::SparseBitmask:
    case WeightFormat::Bf16Panels: return 0;  // packed at load after any slicing
  }
  return 0;
}

// f32 scales (and zero points) per row: 1 per channel, cols / group for int4 groups, none otherwise.
int64_t scales_per_row(const WeightMatrix& w) {
  switch (w.format) {
    case WeightFormat::Int8Channel:
    case WeightFormat::Fp8E4M3: return 1;
    case WeightFormat::Int4Group: return w.cols / w.group;
    default: return 0;
  }
}

// What one pass over w reads (WeightMatrix::quant_bytes) for its current rows / cols.
size_t quant_bytes(const WeightMatrix& w) {
  if (w.dense()) return 0;
  size_t b = size_t(w.rows) * row_bytes(w) + size_t(w.rows * scales_per_row(w)) * sizeof(float);
  if (w.zeros) b += size_t(w.rows * scales_per_row(w)) * sizeof(float);
  if (w.col_perm) b += size_t(w.cols) * sizeof(int32_t);
  return b;
}

}  // namespace

void release_pages(const void* p, size_t bytes) {
  const uintptr_t page = uintptr_t(sysconf(_SC_PAGESIZE));
  const uintptr_t begin = (uintptr_t(p) + page - 1) & ~(page - 1), end = (uintptr_t(p) + bytes) & ~(page - 1);
  if (end > begin) madvise(reinterpret_cast<void*>(begin), end - begin, MADV_DONTNEED);
}

void release_pages(const WeightMatrix& w) {
  if (w.data && w.dense()) release_pages(w.data, size_t(w.bytes()));
}

int64_t column_block(const WeightMatrix& w) {
  switch (w.format) {
    case WeightFormat::Dense:
    case WeightFormat::Int8Channel:
    case WeightFormat::Fp8E4M3: return 1;
    case WeightFormat::Int4Group: return w.col_perm ? 0 : w.group;
    case WeightFormat::Gguf: {
      const GgufTypeTraits* t = gguf_type_traits(uint32_t(w.gguf_type));
      return t ? t->block_elems : 0;
    }
    case WeightFormat::SparseBitmask:
    case WeightFormat::Bf16Panels: return 0;
  }
  return 0;
}

std::string weight_format_name(const WeightMatrix& w) {
  switch (w.format) {
    case WeightFormat::Dense: return dtype_name(w.dtype);
    case WeightFormat::Int8Channel: return w.int8_activations ? "int8 per channel (W8A8)" : "int8 per channel";
    case WeightFormat::Fp8E4M3: return "fp8 e4m3 per channel";
    case WeightFormat::Int4Group:
      return fmt::format("int4 group {}{}", w.group, w.col_perm ? " (act-order)" : "");
    case WeightFormat::Gguf: {
      const GgufTypeTraits* t = gguf_type_traits(uint32_t(w.gguf_type));
      return t ? t->name : fmt::format("ggml type {}", w.gguf_type);
    }
    case WeightFormat::SparseBitmask: return "sparse bitmask";
    case WeightFormat::Bf16Panels: return "bf16 (pair panels)";
  }
  return "?";
}

WeightMatrix row_slice(const WeightMatrix& w, int64_t r0, int64_t n) {
  WeightMatrix s = w;
  s.data = static_cast<const char*>(w.data) + size_t(r0) * row_bytes(w);
  s.rows = n;
  const int64_t spr = scales_per_row(w);
  if (w.scales && spr) s.scales = w.scales + r0 * spr;
  if (w.zeros && spr) s.zeros = w.zeros + r0 * spr;
  s.quant_bytes = quant_bytes(s);
  return s;
}

WeightMatrix column_slice(const WeightMatrix& w, int64_t c0, int64_t n, WeightArena& arena) {
  // Bytes per column block and the block's width, per format: every format keeps a row's column
  // blocks contiguous and in order, so the range is one memcpy per row.
  const int64_t blk = column_block(w);
  const size_t rb = row_bytes(w), blk_bytes = rb / size_t(w.cols / blk);
  const size_t off = size_t(c0 / blk) * blk_bytes, len = size_t(n / blk) * blk_bytes;
  auto* dst = static_cast<char*>(arena.allocate(size_t(w.rows) * len));
  for (int64_t r = 0; r < w.rows; ++r) {
    std::memcpy(dst + size_t(r) * len, static_cast<const char*>(w.data) + size_t(r) * rb + off, len);
  }
  WeightMatrix s = w;
  s.data = dst;
  s.cols = n;
  if (w.format == WeightFormat::Int4Group) {  // scales (and zero points) [rows, cols / group]: their groups
    const int64_t ng = w.cols / w.group, g0 = c0 / w.group, gn = n / w.group;
    auto cut = [&](const float* src) {
      float* d = arena.allocate_array<float>(size_t(w.rows * gn));
      for (int64_t r = 0; r < w.rows; ++r) std::memcpy(d + r * gn, src + r * ng + g0, size_t(gn) * sizeof(float));
      return d;
    };
    s.scales = cut(w.scales);
    if (w.zeros) s.zeros = cut(w.zeros);
  } else if (w.scales) {  // per channel: [rows], unchanged by a column range
    float* d = arena.allocate_array<float>(size_t(w.rows));
    std::memcpy(d, w.scales, size_t(w.rows) * sizeof(float));
    s.scales = d;
  }
  s.quant_bytes = quant_bytes(s);
  return s;
}

size_t data_bytes(const WeightMatrix& w) { return size_t(w.rows) * row_bytes(w); }

WeightMatrix copy_matrix(const WeightMatrix& w, WeightArena& arena) {
  WeightMatrix s = w;
  if (!w.data) return s;
  const size_t bytes = size_t(w.rows) * row_bytes(w);
  void* d = arena.allocate(bytes);
  std::memcpy(d, w.data, bytes);
  s.data = d;
  const int64_t spr = scales_per_row(w);
  auto copy_f32 = [&](const float* src, size_t n) {
    float* p = arena.allocate_array<float>(n);
    std::memcpy(p, src, n * sizeof(float));
    return p;
  };
  if (w.scales && spr) s.scales = copy_f32(w.scales, size_t(w.rows * spr));
  if (w.zeros && spr) s.zeros = copy_f32(w.zeros, size_t(w.rows * spr));
  if (w.col_perm) {
    auto* p = arena.allocate_array<int32_t>(size_t(w.cols));
    std::memcpy(p, w.col_perm, size_t(w.cols) * sizeof(int32_t));
    s.col_perm = p;
  }
  return s;
}

}  // namespace tern
