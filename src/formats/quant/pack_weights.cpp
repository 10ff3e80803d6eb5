#include "formats/quant/pack_weights.h"

#include <fmt/format.h>

#include <algorithm>
#include <cstring>
#include <mutex>
#include <vector>

namespace tern {

namespace {

Status check(const QuantizedLinear& ql, const std::string& name) {
  auto fail = [&](const std::string& what) { return Status::error(fmt::format("{}: {}", name, what)); };
  if (ql.rows <= 0 || ql.cols <= 0) return fail("empty matrix");
  if (ql.q.size() != size_t(ql.rows * ql.cols)) return fail("code count does not match rows x cols");
  if (!ql.smooth.empty()) return fail("smoothing factors were not folded into the previous op");
  if (!ql.g_idx.empty()) {
    if (ql.bits != 4 || ql.group <= 0) return fail("act-order (g_idx) needs 4-bit weights with groups");
    if (ql.g_idx.size() != size_t(ql.cols)) return fail("g_idx does not have one entry per input column");
    std::vector<int64_t> members(size_t(ql.n_groups()), 0);
    for (int32_t g : ql.g_idx) {
      if (g < 0 || g >= ql.n_groups()) return fail("g_idx names a group outside the matrix");
      ++members[size_t(g)];
    }
    for (int64_t n : members)
      if (n != ql.group) return fail(fmt::format("act-order group with {} columns instead of {}", n, ql.group));
  }
  const int64_t ng = ql.fp8 ? 1 : ql.n_groups();
  if (ql.scales.size() != size_t(ql.rows * ng)) return fail("scale count does not match the groups");
  if (!ql.symmetric && ql.zeros.size() != size_t(ql.rows * ng)) return fail("zero-point count does not match");
  return Status::ok();
}

}  // namespace

Result<WeightMatrix> pack_for_kernels(const QuantizedLinear& ql, bool int8_activations, WeightArena& arena,
                                      const std::string& name) {
  TERN_RETURN_IF_ERROR(check(ql, name));
  const int64_t rows = ql.rows, cols = ql.cols;
  WeightMatrix w;
  w.rows = rows, w.cols = cols, w.dtype = DType::F32;
  float* scales = arena.allocate_array<float>(ql.scales.size());
  std::memcpy(scales, ql.scales.data(), ql.scales.size() * sizeof(float));
  w.scales = scales;

  if (ql.fp8) {
    auto* q = arena.allocate_array<uint8_t>(ql.q.size());
    for (size_t i = 0; i < ql.q.size(); ++i) {
      if ((ql.q[i] & 0x7f) == 0x7f) return Status::error(fmt::format("{}: FP8 weight is NaN", name));
      q[i] = ql.q[i];
    }
    w.format = WeightFormat::Fp8E4M3, w.data = q;
    w.quant_bytes = ql.q.size() + size_t(rows) * sizeof(float);
    return w;
  }
  if (ql.bits == 8) {
    if (!ql.symmetric || (ql.group > 0 && ql.group < cols))
      return Status::error(fmt::format("{}: int8 weights must be symmetric with one scale per output channel", name));
    auto* q = arena.allocate_array<int8_t>(ql.q.size());
    for (size_t i = 0; i < ql.q.size(); ++i) q[i] = int8_t(int(ql.q[i]) - 128);
    w.format = WeightFormat::Int8Channel, w.data = q, w.int8_activations = int8_activations;
    w.quant_bytes = ql.q.size() + size_t(rows) * sizeof(float);
    return w;
  }
  if (ql.bits != 4) return Status::error(fmt::format("{}: {}-bit weights are not supported (4 or 8)", name, ql.bits));
  const int64_t group = ql.group > 0 ? ql.group : cols;
  if (group % 32 != 0 || cols % group != 0)
    return Status::error(fmt::format("{}: int4 group {} must be a multiple of 32 dividing the {} input columns",
                                     name, group, cols));
  // Act-order: store the columns sorted by group (stable), so that every group is contiguous as
  // without act-order, and remember the order; the matmul gathers x by it (exllama's approach).
  int32_t* perm = nullptr;
  std::vector<uint8_t> row_codes;
  if (!ql.g_idx.empty()) {
    perm = arena.allocate_array<int32_t>(size_t(cols));
    std::vector<int64_t> next(size_t(ql.n_groups()));
    for (size_t g = 0; g < next.size(); ++g) next[g] = int64_t(g) * group;
    for (int64_t c = 0; c < cols; ++c) perm[next[size_t(ql.g_idx[size_t(c)])]++] = int32_t(c);
    row_codes.resize(size_t(cols));
  }
  // Per row: k/32 blocks of 16 bytes; byte j = code(j) | code(j + 16) << 4.
  auto* packed = arena.allocate_array<uint8_t>(size_t(rows * cols / 2));
  for (int64_t r = 0; r < rows; ++r) {
    const uint8_t* src = ql.q.data() + r * cols;
    if (perm) {
      for (int64_t j = 0; j < cols; ++j) row_codes[size_t(j)] = src[perm[j]];
      src = row_codes.data();
    }
    uint8_t* dst = packed + r * (cols / 2);
    for (int64_t b = 0; b < cols / 32; ++b)
      for (int j = 0; j < 16; ++j)
        dst[b * 16 + j] = uint8_t((src[b * 32 + j] & 0xf) | ((src[b * 32 + 16 + j] & 0xf) << 4));
  }
  w.format = WeightFormat::Int4Group, w.data = packed, w.group = int(group), w.col_perm = perm;
  w.quant_bytes = size_t(rows * cols / 2) + ql.scales.size() * sizeof(float) + (perm ? size_t(cols) * 4 : 0);
  if (!ql.symmetric) {
    float* zeros = arena.allocate_array<float>(ql.zeros.size());
    std::memcpy(zeros, ql.zeros.data(), ql.zeros.size() * sizeof(float));
    w.zeros = zeros;
    w.quant_bytes += ql.zeros.size() * sizeof(float);
  }
  return w;
}

Result<WeightMatrix> quantize_dense_for_kernels(const WeightMatrix& dense, int bits, int group, WeightArena& arena,
                                                const std::string& name, ThreadPool* pool) {
  if (!dense.dense() || !dense.data) return Status::error(fmt::format("{}: not a dense matrix", name));
  if (bits != 8 && bits != 4) return Status::error(fmt::format("{}: {}-bit weights are not supported (4 or 8)", name, bits));
  const int64_t rows = dense.rows, cols = dense.cols;
  const int g = bits == 8 ? 0 : group;
  if (bits == 4 && (g <= 0 || g % 32 != 0 || cols % g != 0))
    return Status::error(fmt::format("{}: int4 group {} must be a multiple of 32 dividing the {} input columns", name,
                                     g, cols));
  // Per row: code bytes and scales of the packed layout (pack_for_kernels), so blocks append.
  const int64_t row_bytes = bits == 8 ? cols : cols / 2, row_scales = bits == 8 ? 1 : cols / g;
  auto* codes = arena.allocate_array<uint8_t>(size_t(rows * row_bytes));
  auto* scales = arena.allocate_array<float>(size_t(rows * row_scales));
  constexpr int64_t kBlockRows = 512;  // 4 MiB of f32 at 2048 columns, per thread
  const int64_t n_blocks = (rows + kBlockRows - 1) / kBlockRows;
  std::mutex failed_mutex;
  Status failed = Status::ok();
  auto run = [&](int64_t b0, int64_t b1) {
    std::vector<float> block;
    for (int64_t b = b0; b < b1; ++b) {
      const int64_t r0 = b * kBlockRows, nr = std::min(kBlockRows, rows - r0);
      block.resize(size_t(nr * cols));
      const char* src = static_cast<const char*>(dense.row(r0));
      for (size_t i = 0; i < block.size(); ++i) block[i] = load_as_f32(src, dense.dtype, i);
      auto ql = quantize_rtn(block.data(), nr, cols, bits, g, /*symmetric=*/true);
      WeightArena tmp;
      auto part = ql.is_ok() ? pack_for_kernels(*ql, false, tmp, name) : Result<WeightMatrix>(ql.status());
      if (!part.is_ok()) {
        std::lock_guard<std::mutex> lock(failed_mutex);
        failed = part.status();
        return;
      }
      std::memcpy(codes + r0 * row_bytes, part->data, size_t(nr * row_bytes));
      std::memcpy(scales + r0 * row_scales, part->scales, size_t(nr * row_scales) * sizeof(float));
    }
  };
  if (pool) {
    pool->parallel_for(n_blocks, 1, run);
  } else {
    run(0, n_blocks);
  }
  TERN_RETURN_IF_ERROR(failed);
  WeightMatrix w;
  w.rows = rows, w.cols = cols, w.dtype = DType::F32, w.data = codes, w.scales = scales;
  w.format = bits == 8 ? WeightFormat::Int8Channel : WeightFormat::Int4Group;
  w.group = bits == 8 ? 0 : g;
  w.quant_bytes = size_t(rows * row_bytes) + size_t(rows * row_scales) * sizeof(float);
  return w;
}

}  // namespace tern
