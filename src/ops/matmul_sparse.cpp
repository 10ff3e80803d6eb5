// Sparse matmul: picks the kernel for (m, cpu) and splits the weight rows over the threads like the
// dense front door (ops/matmul.cpp).
#include "ops/matmul_sparse.h"

#include <algorithm>
#include <cassert>

#include "kernels/cpu/matmul_kernels.h"
#include "kernels/cpu/sparse_kernels.h"

namespace tern {

namespace {

enum class Isa { Scalar, Avx2, Avx512 };

Isa choose(const CpuFeatures& cpu) {
  // The int8 kernel's dot products are vpdpwssd (VNNI); every CPU with VBMI2 so far has VNNI too.
  if (cpu.avx512 && cpu.avx512_vbmi2 && cpu.avx512_vnni) return Isa::Avx512;
  if (cpu.avx2) return Isa::Avx2;
  return Isa::Scalar;
}

cpu::SparseFn gemv_fn(Isa isa) {
  switch (isa) {
    case Isa::Avx512: return cpu::sparse_gemv_avx512;
    case Isa::Avx2: return cpu::sparse_gemv_avx2;
    default: return cpu::sparse_gemv_scalar;
  }
}

cpu::SparseExpandFn expand_fn(Isa isa) {
  switch (isa) {
    case Isa::Avx512: return cpu::sparse_expand_rows_avx512;
    case Isa::Avx2: return cpu::sparse_expand_rows_avx2;
    default: return cpu::sparse_expand_rows_scalar;
  }
}

cpu::GemmFn gemm_fn(const CpuFeatures& cpu) {
  if (cpu.avx512) return cpu::gemm_avx512;
  if (cpu.avx2) return cpu::gemm_avx2;
  return cpu::gemm_scalar;
}

constexpr int64_t kMinParallelWork = 1 << 16;
constexpr int64_t kRowAlign = 16;
// Weight rows expanded per panel for prefill (32 x k f32: 256 KiB at k = 2048).
constexpr int64_t kPanelRows = 32;

// y[:, n0:n1] for m > 8: each panel of weight rows is expanded to f32 [rows, k] (scratch slot 2), the
// dense GEMM writes y's panel columns to [m, rows] (slot 3), which are copied into y.
void panel_gemm(ExecContext& ctx, int thread, const float* x, int64_t m, const WeightMatrix& w, float* y,
                const float* bias, int64_t n0, int64_t n1) {
  const int64_t k = w.cols, n = w.rows;
  const cpu::SparseExpandFn expand = expand_fn(choose(ctx.cpu()));
  const cpu::GemmFn gemm = gemm_fn(ctx.cpu());
  float* panel = static_cast<float*>(ctx.scratch(thread, size_t(kPanelRows * k) * sizeof(float), 2));
  float* ypanel = static_cast<float*>(ctx.scratch(thread, size_t(m * kPanelRows) * sizeof(float), 3));
  for (int64_t p0 = n0; p0 < n1; p0 += kPanelRows) {
    const int64_t rows = std::min(kPanelRows, n1 - p0);
    expand(w, p0, rows, panel);
    const cpu::MatmulArgs args{x, m, WeightMatrix{panel, DType::F32, rows, k}, ypanel, bias ? bias + p0 : nullptr};
    gemm(ctx, thread, args, 0, m, 0, rows);
    for (int64_t i = 0; i < m; ++i) std::copy(ypanel + i * rows, ypanel + (i + 1) * rows, y + i * n + p0);
  }
}

}  // namespace

ColumnTask sparse_gemv_task(const ExecContext& ctx, const cpu::MatmulArgs& a) {
  const cpu::SparseFn fn = gemv_fn(choose(ctx.cpu()));
  return {a.w.rows, kRowAlign, [fn, a](int, int64_t b, int64_t e) { fn(a.x, a.m, a.w, a.y, a.bias, b, e); }};
}

void matmul_sparse(ExecContext& ctx, const float* x, int64_t m, const WeightMatrix& w, float* y, const float* bias) {
  const int64_t n = w.rows, k = w.cols;
  if (m <= 0 || n <= 0) return;
  assert(is_sparse(w) && w.mask && w.row_offsets && (w.nnz == 0 || w.data));
  assert(w.dtype == DType::BF16 || (w.dtype == DType::I8 && w.scales));
  const int nt = m * n * std::max<int64_t>(k, 1) < kMinParallelWork ? 1 : ctx.threads();
  if (m <= cpu::kGemvMaxRows) {
    const ColumnTask task = sparse_gemv_task(ctx, cpu::MatmulArgs{x, m, w, y, bias});
    if (nt == 1) return task.run(0, 0, n);
    ctx.pool().run([&](int t, int count) {
      int64_t b, e;
      column_chunk(n, task.align, t, count, &b, &e);
      if (b < e) task.run(t, b, e);
    });
    return;
  }
  if (nt == 1) return panel_gemm(ctx, 0, x, m, w, y, bias, 0, n);
  ctx.pool().run([&](int t, int count) {
    int64_t b, e;
    column_chunk(n, kPanelRows, t, count, &b, &e);
    if (b < e) panel_gemm(ctx, t, x, m, w, y, bias, b, e);
  });
}

const char* matmul_sparse_kernel_name(const CpuFeatures& cpu, int64_t m, const WeightMatrix& w) {
  // [gemv?][isa][int8?]
  static constexpr const char* kNames[2][3][2] = {
      {{"sparse_panel_gemm_scalar_bf16", "sparse_panel_gemm_scalar_i8"},
       {"sparse_panel_gemm_avx2_bf16", "sparse_panel_gemm_avx2_i8"},
       {"sparse_panel_gemm_avx512_bf16", "sparse_panel_gemm_avx512_i8"}},
      {{"sparse_gemv_scalar_bf16", "sparse_gemv_scalar_i8"},
       {"sparse_gemv_avx2_bf16", "sparse_gemv_avx2_i8"},
       {"sparse_gemv_avx512_bf16", "sparse_gemv_avx512_i8"}}};
  return kNames[m <= cpu::kGemvMaxRows ? 1 : 0][int(choose(cpu))][w.dtype == DType::I8 ? 1 : 0];
}

}  // namespace tern
