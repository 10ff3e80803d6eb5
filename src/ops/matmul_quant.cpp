// Quantized matmul: prepares the activations once (int8 x for W8A8 and int4 weights), picks the
// kernel for (format, m, cpu) and splits weight rows over threads (or rows of x when there are too
// few weight rows), like the dense front door.
#include "ops/matmul_quant.h"

#include <algorithm>
#include <cassert>

#include "core/fp8.h"
#include "kernels/cpu/matmul_kernels.h"
#include "kernels/cpu/quant_kernels.h"
#include "ops/matmul_columns.h"

namespace tern {

namespace {

struct Kernel {
  cpu::QuantFn fn;
  const char* name;
};

// AMX tiles pay for their packing only with at least one full 16-row tile of x.
constexpr int64_t kAmxMinRows = 16;

Kernel choose(const CpuFeatures& cpu, int64_t m, const WeightMatrix& w) {
  switch (w.format) {
    case WeightFormat::Int8Channel:
      if (!w.int8_activations) {
        // Decode: int16 x, integer products (quant_gemv_w8a16.cpp); prefill keeps f32 x (panel GEMM).
        if (m <= cpu::kX16MaxRows) {
          if (cpu.avx512_vnni) return {cpu::quant_gemv_w8a16_x16_avx512vnni, "w8a16_x16_avx512vnni"};
          if (cpu.avx_vnni) return {cpu::quant_gemv_w8a16_x16_avxvnni, "w8a16_x16_avxvnni"};
          if (cpu.avx2) return {cpu::quant_gemv_w8a16_x16_avx2, "w8a16_x16_avx2"};
        }
        if (cpu.avx2) return {cpu::quant_w8a16_avx2, "w8a16_avx2"};
        return {cpu::quant_w8a16_scalar, "w8a16_scalar"};
      }
      if (cpu.amx_int8 && m >= kAmxMinRows) return {cpu::quant_w8a8_amx, "w8a8_amx"};
      if (cpu.avx512_vnni) return {cpu::quant_w8a8_avx512vnni, "w8a8_avx512vnni"};
      if (cpu.avx_vnni) return {cpu::quant_w8a8_avxvnni, "w8a8_avxvnni"};
      if (cpu.avx2) return {cpu::quant_w8a8_avx2, "w8a8_avx2"};
      return {cpu::quant_w8a8_scalar, "w8a8_scalar"};
    case WeightFormat::Int4Group:
      if (cpu.avx512_vnni) return {cpu::quant_int4_avx512vnni, "int4_avx512vnni"};
      if (cpu.avx_vnni) return {cpu::quant_int4_avxvnni, "int4_avxvnni"};
      if (cpu.avx2) return {cpu::quant_int4_avx2, "int4_avx2"};
      return {cpu::quant_int4_scalar, "int4_scalar"};
    case WeightFormat::Fp8E4M3:
      if (cpu.avx2) return {cpu::quant_fp8_avx2, "fp8_avx2"};
      return {cpu::quant_fp8_scalar, "fp8_scalar"};
    default: return {nullptr, "none"};
  }
}

// m > kGemvMaxRows on AVX2 / AVX-512 VNNI: the integer GEMMs (quant_gemm_*.cpp) for W8A16 (k even, as
// every model's) and int4, with per-thread panels; W8A8 keeps its per-row integer kernels, FP8 the panel.
struct GemmKernel {
  cpu::QuantGemmFn fn = nullptr;
  size_t (*panel_bytes)(const WeightMatrix&) = nullptr;
  const char* name = "none";
};

GemmKernel choose_gemm(const CpuFeatures& cpu, int64_t m, const WeightMatrix& w) {
  if (m <= cpu::kGemvMaxRows || !cpu.avx2) return {};
  if (w.format == WeightFormat::Int8Channel && !w.int8_activations && w.cols % 2 == 0) {
    if (cpu.avx512_vnni) return {cpu::quant_gemm_w8a16_avx512vnni, cpu::quant_gemm_w8a16_panel_bytes, "w8a16_gemm_avx512vnni"};
    return {cpu::quant_gemm_w8a16_avx2, cpu::quant_gemm_w8a16_panel_bytes, "w8a16_gemm_avx2"};
  }
  if (w.format == WeightFormat::Int4Group) {
    if (cpu.avx512_vnni) return {cpu::quant_gemm_int4_avx512vnni, cpu::quant_gemm_int4_panel_bytes, "int4_gemm_avx512vnni"};
    return {cpu::quant_gemm_int4_avx2, cpu::quant_gemm_int4_panel_bytes, "int4_gemm_avx2"};
  }
  return {};
}

constexpr int64_t kGemmPanelCols = 32;  // the GEMMs' panel: thread ranges are multiples of it

constexpr int64_t kMinParallelWork = 1 << 16;
constexpr int64_t kRowAlign = 16;  // the kernels' weight-row block (and an AMX tile)


// Weight rows per dequantized panel of the f32-activation GEMM (32 x k f32: 256 KiB at k = 2048).
constexpr int64_t kPanelRows = 32;

// Prefill (m > 8) for FP8 and the W8A16 / int4 shapes the integer GEMMs do not take (x stays f32): a
// panel of kPanelRows weight rows is widened to
// f32 in per-thread scratch (never the whole matrix) and multiplied by the dense GEMM, whose packed
// register tiles reach several times the FMA rate of the per-row kernel. y[m0:m1, n0:n1].
void panel_gemm(ExecContext& ctx, int thread, const float* x, int64_t m, const WeightMatrix& w, float* y,
                const float* bias, const float* fp8_lut, int64_t n0, int64_t n1) {
  const int64_t k = w.cols, n = w.rows;
  float* panel = static_cast<float*>(ctx.scratch(thread, size_t(kPanelRows * k) * sizeof(float), 2));
  float* ypanel = static_cast<float*>(ctx.scratch(thread, size_t(m * kPanelRows) * sizeof(float), 3));
  for (int64_t p0 = n0; p0 < n1; p0 += kPanelRows) {
    const int64_t rows = std::min(kPanelRows, n1 - p0);
    if (w.format == WeightFormat::Fp8E4M3) {
      for (int64_t r = 0; r < rows; ++r) {
        const float s = w.scales[p0 + r];
        const uint8_t* q = static_cast<const uint8_t*>(w.data) + size_t((p0 + r) * k);
        for (int64_t j = 0; j < k; ++j) panel[r * k + j] = fp8_lut[q[j]] * s;
      }
    } else {
      cpu::quant_widen_rows_avx2(w, p0, rows, panel);  // int8 / int4 (use_panel_gemm requires avx2)
    }
    cpu::MatmulArgs args{x, m, WeightMatrix{panel, DType::F32, rows, k}, ypanel, bias ? bias + p0 : nullptr};
    cpu::gemm_avx2(ctx, thread, args, 0, m, 0, rows);
    for (int64_t i = 0; i < m; ++i)
      for (int64_t r = 0; r < rows; ++r) y[i * n + p0 + r] = ypanel[i * rows + r];
  }
}

bool use_panel_gemm(const CpuFeatures& cpu, int64_t m, const WeightMatrix& w) {
  // The integer GEMMs (choose_gemm) take W8A16 with even k and int4 on AVX2 hosts; what is left here is FP8
  // and W8A16 with odd k. W8A8 keeps its integer kernels (x quantized per token is part of its contract).
  if (choose_gemm(cpu, m, w).fn) return false;
  const bool int4_panel = w.format == WeightFormat::Int4Group && !cpu.avx512_vnni && !cpu.avx_vnni;
  const bool panel_format = w.format == WeightFormat::Fp8E4M3 || int4_panel ||
                            (w.format == WeightFormat::Int8Channel && !w.int8_activations);
  return panel_format && cpu.avx2 && m > 8;
}

}  // namespace

size_t quantized_gemv_scratch_bytes(const ExecContext&, const cpu::MatmulArgs& a) {
  const size_t perm = a.w.col_perm ? (size_t(a.m * a.w.cols) * sizeof(float) + 63) & ~size_t(63) : 0;
  return perm + cpu::quant_acts_bytes(a.w, a.m);
}

// scratch: [x permuted to the stored column order (act-order only)] [the kernel's prepared activations].
ColumnTask quantized_gemv_task(const ExecContext& ctx, const cpu::MatmulArgs& a, void* scratch) {
  const WeightMatrix& w = a.w;
  const int64_t m = a.m, k = w.cols;
  assert(m <= cpu::kGemvMaxRows && !use_panel_gemm(ctx.cpu(), m, w));
  const float* x = a.x;
  auto* bytes = static_cast<char*>(scratch);
  if (w.col_perm) {
    // Act-order: the stored columns are in group order; x follows them. xp: [m, k]
    auto* xp = reinterpret_cast<float*>(bytes);
    for (int64_t i = 0; i < m; ++i)
      for (int64_t j = 0; j < k; ++j) xp[i * k + j] = x[i * k + w.col_perm[j]];
    x = xp;
    bytes += (size_t(m * k) * sizeof(float) + 63) & ~size_t(63);
  }
  const Kernel kern = choose(ctx.cpu(), m, w);
  void* acts_scratch = cpu::quant_acts_bytes(w, m) ? bytes : nullptr;
  const cpu::QuantActs acts = ctx.cpu().avx2 ? cpu::quant_acts_prepare_avx2(w, x, m, acts_scratch)
                                             : cpu::quant_acts_prepare(w, x, m, acts_scratch);
  return {w.rows, kRowAlign,
          [kern, acts, a](int, int64_t b, int64_t e) { kern.fn(acts, a.w, a.y, a.bias, 0, a.m, b, e); }};
}

void matmul_quantized(ExecContext& ctx, const float* x, int64_t m, const WeightMatrix& w, float* y,
                      const float* bias) {
  const int64_t n = w.rows, k = w.cols;
  if (m <= 0 || n <= 0) return;
  assert(is_tern_quantized(w) && w.data && w.scales);
  assert(w.format != WeightFormat::Int4Group || (w.group % 32 == 0 && k % w.group == 0));
  const int nt = m * n * std::max<int64_t>(k, 1) < kMinParallelWork ? 1 : ctx.threads();
  const cpu::MatmulArgs args{x, m, w, y, bias};
  if (m <= cpu::kGemvMaxRows && !use_panel_gemm(ctx.cpu(), m, w)) {
    ColumnTask task = quantized_gemv_task(ctx, args, ctx.scratch(0, quantized_gemv_scratch_bytes(ctx, args), 3));
    if (nt == 1) return task.run(0, 0, n);
    task.row_bytes = int64_t(w.bytes()) / n;
    run_column_tasks(ctx, std::span<const ColumnTask>(&task, 1));
    return;
  }
  if (w.col_perm) {
    // Act-order: the stored columns are in group order; x follows them. xp: [m, k]
    float* xp = static_cast<float*>(ctx.scratch(0, size_t(m * k) * sizeof(float), 4));
    for (int64_t i = 0; i < m; ++i)
      for (int64_t j = 0; j < k; ++j) xp[i * k + j] = x[i * k + w.col_perm[j]];
    x = xp;
  }
  if (const GemmKernel gemm = choose_gemm(ctx.cpu(), m, w); gemm.fn) {
    // Activations once (int16 x for W8A16, int8 per group for int4) in slot 5 of thread 0; each thread
    // repacks its own panels into its slot 3.
    const cpu::QuantActs acts = cpu::quant_acts_prepare_avx2(w, x, m, ctx.scratch(0, cpu::quant_acts_bytes(w, m), 5));
    const size_t panel_bytes = gemm.panel_bytes(w);
    auto run = [&](int t, int64_t b, int64_t e) { gemm.fn(acts, w, y, bias, b, e, ctx.scratch(t, panel_bytes, 3)); };
    if (nt == 1 || n < 2 * kGemmPanelCols) return run(0, 0, n);
    ctx.pool().run([&](int t, int count) {
      int64_t b, e;
      column_chunk(n, kGemmPanelCols, t, count, &b, &e);
      if (b < e) run(t, b, e);
    });
    return;
  }
  if (use_panel_gemm(ctx.cpu(), m, w)) {
    float lut[256];
    for (int v = 0; v < 256; ++v) lut[v] = (v & 0x7f) == 0x7f ? 0.f : fp8_e4m3_to_f32(uint8_t(v));
    ctx.pool().run([&](int t, int count) {
      int64_t b, e;
      column_chunk(n, kPanelRows, t, count, &b, &e);
      if (b < e) panel_gemm(ctx, t, x, m, w, y, bias, lut, b, e);
    });
    return;
  }
  const Kernel kern = choose(ctx.cpu(), m, w);
  const size_t scratch_bytes = cpu::quant_acts_bytes(w, m);
  void* scratch = scratch_bytes ? ctx.scratch(0, scratch_bytes, 3) : nullptr;
  const cpu::QuantActs acts = ctx.cpu().avx2 ? cpu::quant_acts_prepare_avx2(w, x, m, scratch)
                                             : cpu::quant_acts_prepare(w, x, m, scratch);
  if (nt == 1) return kern.fn(acts, w, y, bias, 0, m, 0, n);
  const bool split_rows = n >= 2 * kRowAlign * nt || m < 2 * kRowAlign;
  ctx.pool().run([&](int t, int count) {
    int64_t b, e;
    if (split_rows) {
      column_chunk(n, kRowAlign, t, count, &b, &e);
      if (b < e) kern.fn(acts, w, y, bias, 0, m, b, e);
    } else {
      column_chunk(m, kRowAlign, t, count, &b, &e);
      if (b < e) kern.fn(acts, w, y, bias, b, e, 0, n);
    }
  });
}

const char* matmul_quantized_kernel_name(const CpuFeatures& cpu, int64_t m, const WeightMatrix& w) {
  if (const GemmKernel gemm = choose_gemm(cpu, m, w); gemm.fn) return gemm.name;
  if (use_panel_gemm(cpu, m, w)) {
    if (w.format == WeightFormat::Int4Group) return "int4_panel_gemm_avx2";
    return w.format == WeightFormat::Fp8E4M3 ? "fp8_panel_gemm_avx2" : "w8a16_panel_gemm_avx2";
  }
  return choose(cpu, m, w).name;
}

}  // namespace tern
