// GGUF matmul front door: picks scalar / AVX2 and GEMV / GEMM, splits output columns over threads
// in multiples of the GEMM panel width (each thread decodes and streams only its own weight rows).
#include "ops/matmul_gguf.h"

#include <algorithm>
#include <cassert>

#include "kernels/cpu/gguf_kernels.h"

namespace tern {

namespace {
constexpr int64_t kMinParallelWork = 1 << 16;  // multiply-adds below which one thread is faster
}

void matmul_gguf(ExecContext& ctx, const float* x, int64_t m, const WeightMatrix& w, float* y, const float* bias) {
  const int64_t n = w.rows, k = w.cols;
  if (m <= 0 || n <= 0) return;
  assert(w.format == WeightFormat::Gguf && gguf_type_traits(uint32_t(w.gguf_type)) != nullptr);
  assert(k % gguf_traits(GgufType(w.gguf_type)).block_elems == 0);
  const cpu::MatmulArgs args{x, m, w, y, bias};
  const bool avx2 = ctx.cpu().avx2;
  const bool gemv = m <= cpu::kGemvMaxRows;
  const int nt = m * n * std::max<int64_t>(k, 1) < kMinParallelWork ? 1 : ctx.threads();
  // m = 1 on AVX2 for Q4_0 / Q8_0 (x per 32) and Q4_K / Q6_K (x per 256): x is quantized once here
  // (slot 4 of thread 0; the GEMM uses slot 3).
  const GgufType type = GgufType(w.gguf_type);
  const bool m1 = gemv && avx2 && m == 1 && cpu::gguf_gemv_m1_supported(type);
  const bool m1k = gemv && avx2 && m == 1 && cpu::gguf_gemv_m1_k_supported(type);
  cpu::GgufActs acts;
  if (m1) acts = cpu::gguf_acts_prepare_avx2(x, k, ctx.scratch(0, cpu::gguf_acts_bytes(k), 4));
  if (m1k) acts = cpu::gguf_acts_k_prepare_avx2(x, k, ctx.scratch(0, cpu::gguf_acts_k_bytes(k), 4));
  auto run = [&](int t, int64_t b, int64_t e) {
    if (b >= e) return;
    if (m1) return cpu::gguf_gemv_m1_avx2(acts, args, b, e);
    if (m1k) return cpu::gguf_gemv_m1_k_avx2(acts, args, b, e);
    if (gemv) return avx2 ? cpu::gguf_gemv_int8_avx2(args, b, e) : cpu::gguf_gemv_scalar(args, b, e);
    avx2 ? cpu::gguf_gemm_avx2(ctx, t, args, 0, m, b, e) : cpu::gguf_gemm_scalar(ctx, t, args, 0, m, b, e);
  };
  if (nt == 1 || n < 2 * cpu::kGgufPanelCols) return run(0, 0, n);
  ctx.pool().run([&](int t, int count) {
    const int64_t units = (n + cpu::kGgufPanelCols - 1) / cpu::kGgufPanelCols;
    const int64_t b = std::min(n, units * t / count * cpu::kGgufPanelCols);
    const int64_t e = std::min(n, units * (t + 1) / count * cpu::kGgufPanelCols);
    run(t, b, e);
  });
}

const char* matmul_gguf_kernel_name(const ExecContext& ctx, int64_t m, const WeightMatrix& w) {
  const bool gemv = m <= cpu::kGemvMaxRows;
  if (ctx.cpu().avx2 && m == 1 && (cpu::gguf_gemv_m1_supported(GgufType(w.gguf_type)) ||
                                   cpu::gguf_gemv_m1_k_supported(GgufType(w.gguf_type))))
    return "gguf_gemv_m1_avx2";
  if (ctx.cpu().avx2) return gemv ? "gguf_gemv_avx2_int8" : "gguf_gemm_avx2";
  return gemv ? "gguf_gemv_scalar" : "gguf_gemm_scalar";
}

}  // namespace tern
