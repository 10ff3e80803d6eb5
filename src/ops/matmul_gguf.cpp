// GGUF matmul front door: picks scalar / AVX2 and GEMV / GEMM, splits output columns over threads
// in multiples of the GEMM panel width (each thread decodes and streams only its own weight rows).
#include "ops/matmul_gguf.h"

#include <algorithm>
#include <array>
#include <cassert>

#include "kernels/cpu/gguf_kernels.h"
#include "ops/matmul_columns.h"

namespace tern {

namespace {
constexpr int64_t kMinParallelWork = 1 << 16;  // multiply-adds below which one thread is faster
size_t align64(size_t n) { return (n + 63) & ~size_t(63); }
}

namespace {

// Small batches (m = 2..kGemvMaxRows, batched decode) on AVX-512 VNNI hosts, per type, from the
// per-token rates of bench_gguf --cpu-time (one thread, k = n = 2048, GFLOP/s; 2026-12-07):
//   type   m=1 kernel | GEMV m=4 / m=8 | int8 GEMM m=4 / m=8
//   Q8_0   46         | 63 / 73        | 30 / 54
//   Q4_0   70         | 52 / 52        | 35 / 62
//   Q4_K   80         | 42 / 42        | 35 / 64
//   Q5_K   25 (GEMV)  | 33 / 33        | 34 / 61
//   Q6_K   54         | 39 / 39        | 26 / 47
// The per-row GEMV (gguf_dot_avx2.cpp) is slower per token than the m = 1 kernels for Q4_0 / Q4_K / Q6_K,
// so batched decode at 4 in flight fell below 1 in flight (issue 20 item 3): those run the m = 1 kernel
// once per row of x (the same cost per token as m = 1, never less), Q5_K takes the int8 GEMM from 4 rows.
// The small-m kernel (use_smallm, gguf_gemv_smallm_*.cpp) decodes each block once for all rows of x and
// replaces both wherever its k fits (bench_gguf_smallm --threads 1, 2026-12-07, per row at m = 4 / 8 vs
// m = 1: Q4_K 0.5 / 0.4, Q6_K 0.5 / 0.4, Q4_0 0.6 / 0.5, Q5_K 3-4x faster than the int8 GEMM); m1_per_row
// remains for the k it does not take (Q4_0 with an odd number of 32-blocks). Q8_0 takes it too where k is
// a multiple of 64 (it replaces the per-row GEMV above; per row at m = 2 / 4 / 8 vs m = 1, 2048x2048:
// 0.7 / 0.4-0.5 / 0.3-0.4 on VNNI, the per-row GEMV 0.9 / 0.8 / 0.8; other k keep the per-row GEMV).
// Q5_K has no m = 1 kernel of its own: it takes the small-m kernel at m = 1 too (3x the per-row GEMV).
// From 9 to kGgufSmallmMaxRows rows (batched decode at 16 in flight) it replaces the int8 GEMM too, whose per-call
// panel repack was two thirds of an m = 16 call (gguf_kernels.h). bench_gguf_smallm --m 16 --threads 1 --cpu-time,
// same window (2026-12-07 15:31, load 7), ms per call, int8 GEMM (per-row repack, before repack8) -> small-m kernel:
//   VNNI   2048x2048: Q8_0 1.50 -> 1.07, Q4_0 1.29 -> 1.08, Q4_K 1.28 -> 0.87, Q6_K 1.79 -> 0.95-1.07
//          2048x8192: Q8_0 6.09 -> 4.43, Q4_0 5.35 -> 4.27, Q4_K 5.18 -> 3.2-3.4, Q6_K 7.15 -> 3.9-4.3
//   AVX2   2048x2048: Q8_0 2.28 -> 1.53, Q4_0 1.84 -> 1.55, Q4_K 1.81 -> 1.19, Q6_K 2.21 -> 1.45
//          2048x8192: Q8_0 9.27 -> 6.24, Q4_0 7.65 -> 6.38, Q4_K 7.38 -> 4.69, Q6_K 9.58 -> 5.37
// Past 8 rows the int8 GEMM (its panel repack now 8 rows at a time, gguf_gemm_int8_repack8.h) wins where the
// small-m kernel's x no longer sits in L1: it re-reads all m rows of x codes per weight row, and at k = 8192
// 16 rows are 128 KB. Same window, one thread, --cpu-time, µs per call, small-m / GEMM (2026-12-07 15:46, load 6-8):
//   VNNI  2048x2048 m = 9 / 12 / 16   Q8_0 712/818/1085 vs 793/845/942   Q4_0 750/840/1108 vs 774/839/934
//                                     Q4_K 550/620/848 vs 707/762/886    Q6_K 630/800/1060 vs 1070/1190/1330
//         2048x8192 m = 9 / 12 / 16   Q8_0 3370/3650/4780 vs 2850/3080/3490   Q4_0 3190/3430/4250 vs 2140/2450/2880
//                                     Q4_K 2120/2560/3170 vs 2230/2470/2910   Q6_K 2890/3310/3940 vs 3030/3370/3940
//   AVX2  2048x2048 m = 9 / 16        Q8_0 1015/1591 vs 1198/1761   Q4_0 1048/1584 vs 1053/1499
//                                     Q4_K 762/1222 vs 1072/1545    Q6_K 941/1508 vs 1590/1816
//         2048x8192 m = 9 / 16        Q8_0 4109/6263 vs 4699/6972   Q4_0 4259/6322 vs 3375/5223
//                                     Q4_K 3058/4763 vs 3321/5081   Q6_K 3699/5448 vs 4204/6159
int64_t smallm_max_rows(const ExecContext& ctx, GgufType t, int64_t k) {
  const bool wide_x = k > 4096;
  const bool q4_0_q8_0 = t == GgufType::Q4_0 || t == GgufType::Q8_0;
  if (t == GgufType::Q6_K) return cpu::kGgufSmallmMaxRows;
  if (ctx.cpu().avx512_vnni) return wide_x ? cpu::kGemvMaxRows : q4_0_q8_0 ? 12 : cpu::kGgufSmallmMaxRows;
  return wide_x && t == GgufType::Q4_0 ? cpu::kGemvMaxRows : cpu::kGgufSmallmMaxRows;
}
bool use_smallm(const ExecContext& ctx, const cpu::MatmulArgs& a) {
  const GgufType t = GgufType(a.w.gguf_type);
  return (a.m >= 2 || (a.m == 1 && t == GgufType::Q5_K)) && a.m <= smallm_max_rows(ctx, t, a.w.cols) && ctx.cpu().avx2 &&
         cpu::gguf_gemv_smallm_supported(t, a.w.cols);
}
// The rows the GEMV-style tasks take (gguf_gemv_task): the small-m kernel's, else kGemvMaxRows.
bool use_gemv_task(const ExecContext& ctx, const cpu::MatmulArgs& a) {
  return a.m <= cpu::kGemvMaxRows || use_smallm(ctx, a);
}
bool m1_per_row(const ExecContext& ctx, const cpu::MatmulArgs& a) {
  const GgufType t = GgufType(a.w.gguf_type);
  return a.m >= 2 && a.m <= cpu::kGemvMaxRows && ctx.cpu().avx512_vnni && !use_smallm(ctx, a) &&
         (t == GgufType::Q4_0 || t == GgufType::Q4_K || t == GgufType::Q6_K);
}
// Q5_K's small batches take the int8 GEMM from 4 rows on VNNI only where the small-m kernel does not fit k.
int64_t gemm_int8_min_rows(const ExecContext& ctx, GgufType t, int64_t k) {
  return ctx.cpu().avx512_vnni && t == GgufType::Q5_K && !cpu::gguf_gemv_smallm_supported(t, k) ? 4
                                                                                               : cpu::kGemvMaxRows + 1;
}

// m = 1 on AVX2 for Q4_0 / Q8_0 (x per 32) and Q4_K / Q6_K (x per 256, AVX-512 VNNI where present): x is
// quantized once per call (per row of x, each row its own scratch region, with m1_per_row).
bool use_m1(const ExecContext& ctx, const cpu::MatmulArgs& a) {
  return (a.m == 1 || m1_per_row(ctx, a)) && ctx.cpu().avx2 && cpu::gguf_gemv_m1_supported(GgufType(a.w.gguf_type));
}
bool use_m1k(const ExecContext& ctx, const cpu::MatmulArgs& a) {
  return (a.m == 1 || m1_per_row(ctx, a)) && ctx.cpu().avx2 &&
         cpu::gguf_gemv_m1_k_supported(GgufType(a.w.gguf_type));
}

// x quantized once per call, integer dot products (gguf_gemm_int8_*.cpp): m > kGemvMaxRows on VNNI or
// AVX2, and Q5_K's small batches on VNNI.
bool use_gemm_int8(const ExecContext& ctx, const cpu::MatmulArgs& a) {
  const GgufType t = GgufType(a.w.gguf_type);
  return a.m >= gemm_int8_min_rows(ctx, t, a.w.cols) && !use_smallm(ctx, a) && (ctx.cpu().avx512_vnni || ctx.cpu().avx2) &&
         cpu::gguf_gemm_int8_supported(t);
}

// The integer GEMM as a column task; x's codes go to `scratch` (gguf_gemm_int8_acts_bytes), each thread
// packs into ctx.scratch(thread, ..., 3).
ColumnTask gemm_int8_task(ExecContext& ctx, const cpu::MatmulArgs& a, void* scratch) {
  const bool vnni = ctx.cpu().avx512_vnni;
  const cpu::GgufGemmActs acts = vnni ? cpu::gguf_gemm_int8_prepare_avx512(a.x, a.m, a.w.cols, scratch)
                                      : cpu::gguf_gemm_int8_prepare_avx2(a.x, a.m, a.w.cols, scratch);
  const size_t panel_bytes = cpu::gguf_gemm_int8_panel_bytes(a.w);
  return {a.w.rows, cpu::kGgufPanelCols, [&ctx, a, acts, panel_bytes, vnni](int t, int64_t b, int64_t e) {
            void* panel = ctx.scratch(t, panel_bytes, 3);
            vnni ? cpu::gguf_gemm_int8_avx512vnni(acts, a, panel, b, e) : cpu::gguf_gemm_int8_avx2(acts, a, panel, b, e);
          }};
}

// Any m: the integer GEMM, the GEMV (m <= kGemvMaxRows) or the f32 panel GEMM, which packs into
// ctx.scratch(thread, ..., 3).
ColumnTask gguf_task(ExecContext& ctx, const cpu::MatmulArgs& a, void* scratch) {
  if (use_gemm_int8(ctx, a)) return gemm_int8_task(ctx, a, scratch);
  if (use_gemv_task(ctx, a)) return gguf_gemv_task(ctx, a, scratch);
  const bool avx2 = ctx.cpu().avx2;
  return {a.w.rows, cpu::kGgufPanelCols, [&ctx, a, avx2](int t, int64_t b, int64_t e) {
            avx2 ? cpu::gguf_gemm_avx2(ctx, t, a, 0, a.m, b, e) : cpu::gguf_gemm_scalar(ctx, t, a, 0, a.m, b, e);
          }};
}

}  // namespace

size_t gguf_gemv_scratch_bytes(const ExecContext& ctx, const cpu::MatmulArgs& a) {
  if (use_gemm_int8(ctx, a)) return cpu::gguf_gemm_int8_acts_bytes(a.m, a.w.cols);
  if (use_smallm(ctx, a)) return cpu::gguf_smallm_acts_bytes(GgufType(a.w.gguf_type), a.m, a.w.cols);
  if (use_m1(ctx, a)) return size_t(a.m) * align64(cpu::gguf_acts_bytes(a.w.cols));
  if (use_m1k(ctx, a)) return size_t(a.m) * align64(cpu::gguf_acts_k_bytes(a.w.cols));
  return 0;
}

ColumnTask gguf_gemv_task(ExecContext& ctx, const cpu::MatmulArgs& a, void* scratch) {
  assert(use_gemv_task(ctx, a));
  if (use_gemm_int8(ctx, a)) return gemm_int8_task(ctx, a, scratch);
  const int64_t n = a.w.rows, align = cpu::kGgufPanelCols;
  if (use_smallm(ctx, a)) {
    const cpu::GgufSmallmActs acts = cpu::gguf_smallm_prepare(GgufType(a.w.gguf_type), a.x, a.m, a.w.cols, scratch);
    const auto fn = ctx.cpu().avx512_vnni ? cpu::gguf_gemv_smallm_avx512vnni : cpu::gguf_gemv_smallm_avx2;
    return {n, align, [fn, acts, a](int, int64_t b, int64_t e) { fn(acts, a, b, e); }};
  }
  const bool m1 = use_m1(ctx, a), m1k = !m1 && use_m1k(ctx, a);
  if (m1 || m1k) {
    // Each row i of x: its own activations at scratch + i · stride and a 1-row MatmulArgs (x and y rows i).
    const int64_t k = a.w.cols;
    const size_t stride = align64(m1 ? cpu::gguf_acts_bytes(k) : cpu::gguf_acts_k_bytes(k));
    std::array<cpu::GgufActs, cpu::kGemvMaxRows> acts;
    std::array<cpu::MatmulArgs, cpu::kGemvMaxRows> rows;
    for (int64_t i = 0; i < a.m; ++i) {
      void* s = static_cast<char*>(scratch) + size_t(i) * stride;
      acts[size_t(i)] = m1 ? cpu::gguf_acts_prepare_avx2(a.x + i * k, k, s) : cpu::gguf_acts_k_prepare_avx2(a.x + i * k, k, s);
      rows[size_t(i)] = cpu::MatmulArgs{a.x + i * k, 1, a.w, a.y + i * n, a.bias};
    }
    const auto fn = m1 ? cpu::gguf_gemv_m1_avx2
                       : ctx.cpu().avx512_vnni ? cpu::gguf_gemv_m1_k_avx512vnni : cpu::gguf_gemv_m1_k_avx2;
    return {n, align, [fn, acts, rows, m = a.m](int, int64_t b, int64_t e) {
              for (int64_t i = 0; i < m; ++i) fn(acts[size_t(i)], rows[size_t(i)], b, e);
            }};
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
  const size_t scratch_bytes = use_gemm_int8(ctx, args)     ? cpu::gguf_gemm_int8_acts_bytes(m, k)
                               : use_gemv_task(ctx, args) ? gguf_gemv_scratch_bytes(ctx, args)
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
  const cpu::MatmulArgs a{nullptr, m, w, nullptr, nullptr};
  if (use_gemm_int8(ctx, a)) return ctx.cpu().avx512_vnni ? "gguf_gemm_int8_avx512vnni" : "gguf_gemm_int8_avx2";
  const bool gemv = use_gemv_task(ctx, a);
  if (gemv && use_smallm(ctx, a)) return ctx.cpu().avx512_vnni ? "gguf_gemv_smallm_avx512vnni" : "gguf_gemv_smallm_avx2";
  if (gemv && use_m1k(ctx, a)) return ctx.cpu().avx512_vnni ? "gguf_gemv_m1_k_avx512vnni" : "gguf_gemv_m1_avx2";
  if (gemv && use_m1(ctx, a)) return "gguf_gemv_m1_avx2";
  if (ctx.cpu().avx2) return gemv ? "gguf_gemv_avx2_int8" : "gguf_gemm_avx2";
  return gemv ? "gguf_gemv_scalar" : "gguf_gemm_scalar";
}

}  // namespace tern
