// GGUF matmul front door: picks scalar / AVX2 and GEMV / GEMM, splits output columns over threads
// in multiples of the GEMM panel width (each thread decodes and streams only its own weight rows).
#include "ops/matmul_gguf.h"

#include <algorithm>
#include <cassert>

#include "kernels/cpu/gguf_kernels.h"
#include "ops/matmul_columns.h"

namespace tern {

namespace {
constexpr int64_t kMinParallelWork = 1 << 16;  // multiply-adds below which one thread is faster
}

namespace {

// m = 1 on AVX2 for Q4_0 / Q8_0 (x per 32) and Q4_K / Q6_K (x per 256, AVX-512 VNNI where present): x is
// quantized once per call.
bool use_m1(const ExecContext& ctx, const cpu::MatmulArgs& a) {
  return a.m == 1 && ctx.cpu().avx2 && cpu::gguf_gemv_m1_supported(GgufType(a.w.gguf_type));
}
bool use_m1k(const ExecContext& ctx, const cpu::MatmulArgs& a) {
  return a.m == 1 && ctx.cpu().avx2 && cpu::gguf_gemv_m1_k_supported(GgufType(a.w.gguf_type));
}

// m > kGemvMaxRows: x quantized once per call, integer dot products (gguf_gemm_int8_*.cpp) on VNNI or AVX2.
bool use_gemm_int8(const ExecContext& ctx, const cpu::MatmulArgs& a) {
  return a.m > cpu::kGemvMaxRows && (ctx.cpu().avx512_vnni || ctx.cpu().avx2) &&
         cpu::gguf_gemm_int8_supported(GgufType(a.w.gguf_type));
}

// Any m: the GEMV (m <= kGemvMaxRows) or a panel GEMM, which packs into ctx.scratch(thread, ..., 3).
ColumnTask gguf_task(ExecContext& ctx, const cpu::MatmulArgs& a, void* scratch) {
  if (a.m <= cpu::kGemvMaxRows) return gguf_gemv_task(ctx, a, scratch);
  if (use_gemm_int8(ctx, a)) {
    const bool vnni = ctx.cpu().avx512_vnni;
    const cpu::GgufGemmActs acts = vnni ? cpu::gguf_gemm_int8_prepare_avx512(a.x, a.m, a.w.cols, scratch)
                                        : cpu::gguf_gemm_int8_prepare_avx2(a.x, a.m, a.w.cols, scratch);
    const size_t panel_bytes = cpu::gguf_gemm_int8_panel_bytes(a.w);
    return {a.w.rows, cpu::kGgufPanelCols, [&ctx, a, acts, panel_bytes, vnni](int t, int64_t b, int64_t e) {
              void* panel = ctx.scratch(t, panel_bytes, 3);
              vnni ? cpu::gguf_gemm_int8_avx512vnni(acts, a, panel, b, e) : cpu::gguf_gemm_int8_avx2(acts, a, panel, b, e);
            }};
  }
  const bool avx2 = ctx.cpu().avx2;
  return {a.w.rows, cpu::kGgufPanelCols, [&ctx, a, avx2](int t, int64_t b, int64_t e) {
            avx2 ? cpu::gguf_gemm_avx2(ctx, t, a, 0, a.m, b, e) : cpu::gguf_gemm_scalar(ctx, t, a, 0, a.m, b, e);
          }};
}

}  // namespace

size_t gguf_gemv_scratch_bytes(const ExecContext& ctx, const cpu::MatmulArgs& a) {
  if (use_m1(ctx, a)) return cpu::gguf_acts_bytes(a.w.cols);
  if (use_m1k(ctx, a)) return cpu::gguf_acts_k_bytes(a.w.cols);
  return 0;
}

ColumnTask gguf_gemv_task(const ExecContext& ctx, const cpu::MatmulArgs& a, void* scratch) {
  assert(a.m <= cpu::kGemvMaxRows);
  const int64_t n = a.w.rows, align = cpu::kGgufPanelCols;
  if (use_m1(ctx, a)) {
    const cpu::GgufActs acts = cpu::gguf_acts_prepare_avx2(a.x, a.w.cols, scratch);
    return {n, align, [a, acts](int, int64_t b, int64_t e) { cpu::gguf_gemv_m1_avx2(acts, a, b, e); }};
  }
  if (use_m1k(ctx, a)) {
    const cpu::GgufActs acts = cpu::gguf_acts_k_prepare_avx2(a.x, a.w.cols, scratch);
    if (ctx.cpu().avx512_vnni)
      return {n, align, [a, acts](int, int64_t b, int64_t e) { cpu::gguf_gemv_m1_k_avx512vnni(acts, a, b, e); }};
    return {n, align, [a, acts](int, int64_t b, int64_t e) { cpu::gguf_gemv_m1_k_avx2(acts, a, b, e); }};
  }
  if (ctx.cpu().avx2) return {n, align, [a](int, int64_t b, int64_t e) { cpu::gguf_gemv_int8_avx2(a, b, e); }};
  return {n, align, [a](int, int64_t b, int64_t e) { cpu::gguf_gemv_scalar(a, b, e); }};
}

void matmul_gguf(ExecContext& ctx, const float* x, int64_t m, const WeightMatrix& w, float* y, const float* bias) {
  const int64_t n = w.rows, k = w.cols;
  if (m <= 0 || n <= 0) return;
  assert(w.format == WeightFormat::Gguf && gguf_type_traits(uint32_t(w.gguf_type)) != nullptr);
  assert(k % gguf_traits(GgufType(w.gguf_type)).block_elems == 0);
  const cpu::MatmulArgs args{x, m, w, y, bias};
  const int nt = m * n * std::max<int64_t>(k, 1) < kMinParallelWork ? 1 : ctx.threads();
  // The m = 1 / int8-GEMM activations live in slot 4 of thread 0 (the GEMMs pack into slot 3).
  const size_t scratch_bytes = m <= cpu::kGemvMaxRows ? gguf_gemv_scratch_bytes(ctx, args)
                               : use_gemm_int8(ctx, args) ? cpu::gguf_gemm_int8_acts_bytes(m, k)
                                                          : 0;
  const ColumnTask task = gguf_task(ctx, args, scratch_bytes ? ctx.scratch(0, scratch_bytes, 4) : nullptr);
  if (nt == 1 || n < 2 * task.align) return task.run(0, 0, n);
  ctx.pool().run([&](int t, int count) {
    int64_t b, e;
    column_chunk(n, task.align, t, count, &b, &e);
    if (b < e) task.run(t, b, e);
  });
}

const char* matmul_gguf_kernel_name(const ExecContext& ctx, int64_t m, const WeightMatrix& w) {
  const bool gemv = m <= cpu::kGemvMaxRows;
  if (ctx.cpu().avx512_vnni && m == 1 && cpu::gguf_gemv_m1_k_supported(GgufType(w.gguf_type)))
    return "gguf_gemv_m1_k_avx512vnni";
  if (ctx.cpu().avx2 && m == 1 && (cpu::gguf_gemv_m1_supported(GgufType(w.gguf_type)) ||
                                   cpu::gguf_gemv_m1_k_supported(GgufType(w.gguf_type))))
    return "gguf_gemv_m1_avx2";
  if (!gemv && cpu::gguf_gemm_int8_supported(GgufType(w.gguf_type))) {
    if (ctx.cpu().avx512_vnni) return "gguf_gemm_int8_avx512vnni";
    if (ctx.cpu().avx2) return "gguf_gemm_int8_avx2";
  }
  if (ctx.cpu().avx2) return gemv ? "gguf_gemv_avx2_int8" : "gguf_gemm_avx2";
  return gemv ? "gguf_gemv_scalar" : "gguf_gemm_scalar";
}

}  // namespace tern
