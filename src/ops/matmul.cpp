// matmul front door: checks the call, picks the kernel for (m, dtype, cpu) and splits the work.
// Threads split the output columns (= weight rows) into contiguous ranges, so each thread streams
// its own part of the weights exactly once; only when there are too few columns for that (a
// prefill against a narrow matrix) do they split the rows of x instead. Decode GEMVs take their
// ranges as ~256 KB items from a shared counter (run_column_tasks), GEMMs one static share each.
#include "ops/matmul.h"

#include <algorithm>
#include <cassert>
#include <memory>
#include <vector>

#include "kernels/cpu/matmul_bf16_panels.h"
#include "kernels/cpu/matmul_kernels.h"
#include "ops/matmul_quant.h"
#include "ops/matmul_gguf.h"
#include "ops/matmul_columns.h"
#include "ops/matmul_sparse.h"

namespace tern {

namespace {

enum class Isa { Scalar, Avx2, Avx512, Avx512Bf16, Amx };

struct Choice {
  Isa isa;
  bool gemv;
  bool smallm = false;  // the small-m bf16 kernel (only ever with Isa::Avx2)
  bool evenodd = false;  // the bf16 GEMV with shuffle-free widening (only ever with Isa::Avx512, m >= 2)
};

// The bf16-dot GEMMs (AMX, AVX512-BF16) round x to bf16: only when the context allows it.
Choice choose(const ExecContext& ctx, int64_t m, DType dt) {
  const CpuFeatures& cpu = ctx.cpu();
  const bool gemv = m <= cpu::kGemvMaxRows;
  const bool bf16_dot = !gemv && dt == DType::BF16 && ctx.activations() == ActivationPrecision::kBf16;
  if (bf16_dot && cpu.amx_bf16) return {Isa::Amx, false};
  if (bf16_dot && cpu.avx512_bf16) return {Isa::Avx512Bf16, false};
  // m = 1 (plain decode) keeps the plain GEMV; from m = 2 the even/odd one streams the weights faster
  // (its deeper prefetch) and, from m = 4, does the FMAs faster.
  if (cpu.avx512) return {Isa::Avx512, gemv, false, gemv && dt == DType::BF16 && m >= cpu::kEvenOddMinRows};
  if (cpu.avx2) return {Isa::Avx2, gemv, !gemv && dt == DType::BF16 && m <= cpu::kSmallMMaxRows};
  return {Isa::Scalar, gemv};
}

cpu::GemvFn gemv_fn(Isa isa) {
  switch (isa) {
    case Isa::Avx512: return cpu::gemv_avx512;
    case Isa::Avx2: return cpu::gemv_avx2;
    default: return cpu::gemv_scalar;
  }
}

cpu::GemmFn gemm_fn(Isa isa) {
  switch (isa) {
    case Isa::Amx: return cpu::gemm_amx;
    case Isa::Avx512Bf16: return cpu::gemm_avx512bf16;
    case Isa::Avx512: return cpu::gemm_avx512;
    case Isa::Avx2: return cpu::gemm_avx2;
    default: return cpu::gemm_scalar;
  }
}

// Bf16Panels weights (packed at load for --activations bf16): the AVX-512 GEMV for decode, the
// AVX512-BF16 GEMM for prefill; the scalar references where the context cannot run those.
cpu::GemvFn panels_gemv(const ExecContext& ctx) {
  return ctx.cpu().avx512 ? cpu::gemv_bf16_panels_avx512 : cpu::gemv_bf16_panels_scalar;
}
cpu::GemmFn panels_gemm(const ExecContext& ctx) {
  return ctx.cpu().avx512_bf16 && ctx.activations() == ActivationPrecision::kBf16 ? cpu::gemm_bf16_panels_avx512bf16
                                                                                  : cpu::gemm_bf16_panels_scalar;
}

// A plain (row-major, unquantized) weight matrix the even/odd GEMV takes at this m.
bool plain_evenodd(const ExecContext& ctx, int64_t m, const WeightMatrix& w) {
  return w.format == WeightFormat::Dense && choose(ctx, m, w.dtype).evenodd;
}

// Below this many multiply-adds a parallel region costs more than it saves (~a few µs).
constexpr int64_t kMinParallelWork = 1 << 16;
// Column ranges are multiples of this: every kernel's register tile width divides it.
constexpr int64_t kColumnAlign = 32;
constexpr int64_t kRowAlign = 32;

// The even/odd bf16 GEMV's x, permuted by each thread into its own scratch (slot 4: free while column
// tasks run): one shared copy, written by one thread while the other's cache still held its lines from
// the previous product, stalled the writer on every line (4.7% of an 8-row verify step on
// docs-llama-28m, 2 threads). A thread permutes once per call and x, not once per column range: what
// its slot holds is remembered per thread (each entry written only by its own thread), so the ranges
// after its first, and the other jobs of a group that read the same x (q/k/v, gate/up), reuse it.
struct EvenOddX {
  const float* x = nullptr;  // the x permuted into xp, [m, k]
  const float* xp = nullptr;
  int64_t m = 0, k = 0;
};
using EvenOddState = std::shared_ptr<std::vector<EvenOddX>>;

EvenOddState evenodd_state(const ExecContext& ctx) { return std::make_shared<std::vector<EvenOddX>>(size_t(ctx.threads())); }

ColumnTask evenodd_task(ExecContext& ctx, const cpu::MatmulArgs& a, EvenOddState state) {
  const size_t bytes = size_t(a.m * cpu::evenodd_xp_stride(a.w.cols)) * sizeof(float);
  return {a.w.rows, kColumnAlign,
          [&ctx, a, bytes, state](int t, int64_t b, int64_t e) {
            float* xp = static_cast<float*>(ctx.scratch(t, bytes, 4));
            EvenOddX& held = (*state)[size_t(t)];
            if (held.x != a.x || held.xp != xp || held.m != a.m || held.k != a.w.cols) {
              cpu::evenodd_permute_x_avx512(a.x, a.m, a.w.cols, xp);
              held = {a.x, xp, a.m, a.w.cols};
            }
            cpu::gemv_evenodd_avx512(a, xp, b, e);
          },
          int64_t(a.w.bytes()) / a.w.rows};
}

}  // namespace

void matmul(ExecContext& ctx, const float* x, int64_t m, const WeightMatrix& w, float* y, const float* bias) {
  const int64_t n = w.rows, k = w.cols;
  if (m <= 0 || n <= 0) return;
  if (is_tern_quantized(w)) return matmul_quantized(ctx, x, m, w, y, bias);
  if (w.format == WeightFormat::Gguf) return matmul_gguf(ctx, x, m, w, y, bias);
  if (is_sparse(w)) return matmul_sparse(ctx, x, m, w, y, bias);
  assert(x != nullptr && y != nullptr && k >= 0 && (k == 0 || w.data != nullptr));
  const cpu::MatmulArgs args{x, m, w, y, bias};
  const bool panels = w.format == WeightFormat::Bf16Panels;
  const Choice c = panels ? Choice{Isa::Scalar, m <= cpu::kGemvMaxRows} : choose(ctx, m, w.dtype);
  const int64_t work = m * n * std::max<int64_t>(k, 1);
  const int nt = work < kMinParallelWork ? 1 : ctx.threads();

  if (c.evenodd) {
    const ColumnTask task = evenodd_task(ctx, args, evenodd_state(ctx));
    if (nt == 1 || n < 2 * kColumnAlign) return task.run(0, 0, n);
    run_column_tasks(ctx, std::span<const ColumnTask>(&task, 1));
    return;
  }
  if (c.gemv) {
    const cpu::GemvFn fn = panels ? panels_gemv(ctx) : gemv_fn(c.isa);
    if (nt == 1 || n < 2 * kColumnAlign) return fn(args, 0, n);
    const ColumnTask task{n, kColumnAlign, [fn, &args](int, int64_t b, int64_t e) { fn(args, b, e); },
                          int64_t(w.bytes()) / n};
    run_column_tasks(ctx, std::span<const ColumnTask>(&task, 1));
    return;
  }

  if (c.smallm) {  // batched decode: every thread streams its own columns (= weight rows) once
    if (nt == 1 || n < 2 * kColumnAlign) return cpu::smallm_avx2(ctx, 0, args, 0, n);
    ctx.pool().run([&](int t, int count) {
      int64_t b, e;
      column_chunk(n, kColumnAlign, t, count, &b, &e);
      if (b < e) cpu::smallm_avx2(ctx, t, args, b, e);
    });
    return;
  }

  const cpu::GemmFn fn = panels ? panels_gemm(ctx) : gemm_fn(c.isa);
  if (nt == 1) return fn(ctx, 0, args, 0, m, 0, n);
  const bool split_columns = n >= 4 * kColumnAlign * nt || m < 2 * kRowAlign;
  ctx.pool().run([&](int t, int count) {
    int64_t b, e;
    if (split_columns) {
      column_chunk(n, kColumnAlign, t, count, &b, &e);
      if (b < e) fn(ctx, t, args, 0, m, b, e);
    } else {
      column_chunk(m, kRowAlign, t, count, &b, &e);
      if (b < e) fn(ctx, t, args, b, e, 0, n);
    }
  });
}

void matmul_group(ExecContext& ctx, int64_t m, std::span<const MatmulJob> jobs) {
  if (m <= 0 || jobs.empty()) return;
  if (m > cpu::kGemvMaxRows || jobs.size() == 1 || ctx.threads() == 1) {
    for (const MatmulJob& j : jobs) matmul(ctx, j.x, m, *j.w, j.y, j.bias);
    return;
  }
  // Every job's prepared activations side by side in one scratch block (slot 5 of thread 0: the
  // single-product paths use slots 0-4).
  std::vector<cpu::MatmulArgs> args;
  std::vector<size_t> offsets;
  size_t total = 0;
  int64_t work = 0;
  args.reserve(jobs.size());
  offsets.reserve(jobs.size());
  for (const MatmulJob& j : jobs) {
    args.push_back({j.x, m, *j.w, j.y, j.bias});
    size_t bytes = 0;
    if (is_tern_quantized(*j.w)) bytes = quantized_gemv_scratch_bytes(ctx, args.back());
    if (j.w->format == WeightFormat::Gguf) bytes = gguf_gemv_scratch_bytes(ctx, args.back());
    offsets.push_back(total);
    total += (bytes + 63) & ~size_t(63);
    work += m * j.w->rows * std::max<int64_t>(j.w->cols, 1);
  }
  char* scratch = total ? static_cast<char*>(ctx.scratch(0, total, 5)) : nullptr;
  std::vector<ColumnTask> tasks;
  EvenOddState evenodd;  // made for the first even/odd job, shared by the others
  tasks.reserve(jobs.size());
  for (size_t i = 0; i < jobs.size(); ++i) {
    const cpu::MatmulArgs& a = args[i];
    if (a.w.rows <= 0) continue;
    if (is_tern_quantized(a.w)) {
      tasks.push_back(quantized_gemv_task(ctx, a, scratch + offsets[i]));
    } else if (a.w.format == WeightFormat::Gguf) {
      tasks.push_back(gguf_gemv_task(ctx, a, scratch + offsets[i]));
    } else if (is_sparse(a.w)) {
      tasks.push_back(sparse_gemv_task(ctx, a));
    } else if (plain_evenodd(ctx, m, a.w)) {
      if (!evenodd) evenodd = evenodd_state(ctx);
      tasks.push_back(evenodd_task(ctx, a, evenodd));
    } else {
      assert(a.x != nullptr && a.y != nullptr && (a.w.cols == 0 || a.w.data != nullptr));
      const cpu::GemvFn fn =
          a.w.format == WeightFormat::Bf16Panels ? panels_gemv(ctx) : gemv_fn(choose(ctx, m, a.w.dtype).isa);
      tasks.push_back({a.w.rows, kColumnAlign, [fn, a](int, int64_t b, int64_t e) { fn(a, b, e); }});
    }
    tasks.back().row_bytes = int64_t(a.w.bytes()) / a.w.rows;
  }
  if (work < kMinParallelWork) {
    for (const ColumnTask& task : tasks) task.run(0, 0, task.n);
    return;
  }
  // Every job's columns in one region, split as matmul() splits one.
  run_column_tasks(ctx, tasks);
}

const char* matmul_kernel_name(const ExecContext& ctx, int64_t m, const WeightMatrix& w) {
  if (is_tern_quantized(w)) return matmul_quantized_kernel_name(ctx.cpu(), std::max<int64_t>(m, 1), w);
  // [gemv?][isa][dtype] as string literals: names must outlive any caller.
  static constexpr const char* kNames[2][5][3] = {
      {{"gemm_scalar_f32", "gemm_scalar_f16", "gemm_scalar_bf16"},
       {"gemm_avx2_f32", "gemm_avx2_f16", "gemm_avx2_bf16"},
       {"gemm_avx512_f32", "gemm_avx512_f16", "gemm_avx512_bf16"},
       {"gemm_avx512bf16_f32", "gemm_avx512bf16_f16", "gemm_avx512bf16_bf16"},
       {"gemm_amx_f32", "gemm_amx_f16", "gemm_amx_bf16"}},
      {{"gemv_scalar_f32", "gemv_scalar_f16", "gemv_scalar_bf16"},
       {"gemv_avx2_f32", "gemv_avx2_f16", "gemv_avx2_bf16"},
       {"gemv_avx512_f32", "gemv_avx512_f16", "gemv_avx512_bf16"},
       {"gemv_avx512bf16_f32", "gemv_avx512bf16_f16", "gemv_avx512bf16_bf16"},
       {"gemv_amx_f32", "gemv_amx_f16", "gemv_amx_bf16"}}};
  if (w.format == WeightFormat::Gguf) return matmul_gguf_kernel_name(ctx, m, w);
  if (is_sparse(w)) return matmul_sparse_kernel_name(ctx.cpu(), std::max<int64_t>(m, 1), w);
  if (w.format == WeightFormat::Bf16Panels) {
    if (m <= cpu::kGemvMaxRows) return ctx.cpu().avx512 ? "gemv_panels_avx512_bf16" : "gemv_panels_scalar_bf16";
    return panels_gemm(ctx) == cpu::gemm_bf16_panels_avx512bf16 ? "gemm_panels_avx512bf16_bf16" : "gemm_panels_scalar_bf16";
  }
  const Choice c = choose(ctx, std::max<int64_t>(m, 1), w.dtype);
  if (c.smallm) return "smallm_avx2_bf16";
  if (c.evenodd) return "gemv_evenodd_avx512_bf16";
  return kNames[c.gemv ? 1 : 0][int(c.isa)][int(w.dtype)];
}

}  // namespace tern
