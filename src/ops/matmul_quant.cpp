// Quantized matmul: prepares the activations once (int8 x for W8A8 and int4 weights), picks the
// kernel for (format, m, cpu) and splits weight rows over threads (or rows of x when there are too
// few weight rows), like the dense front door.
#include "ops/matmul_quant.h"

#include <algorithm>
#include <cassert>

#include "kernels/cpu/quant_kernels.h"

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

constexpr int64_t kMinParallelWork = 1 << 16;
constexpr int64_t kRowAlign = 16;  // the kernels' weight-row block (and an AMX tile)

void chunk(int64_t n, int64_t align, int t, int nt, int64_t* b, int64_t* e) {
  const int64_t units = (n + align - 1) / align;
  *b = std::min(n, units * t / nt * align);
  *e = std::min(n, units * (t + 1) / nt * align);
}

}  // namespace

void matmul_quantized(ExecContext& ctx, const float* x, int64_t m, const WeightMatrix& w, float* y,
                      const float* bias) {
  const int64_t n = w.rows, k = w.cols;
  if (m <= 0 || n <= 0) return;
  assert(is_tern_quantized(w) && w.data && w.scales);
  assert(w.format != WeightFormat::Int4Group || (w.group % 32 == 0 && k % w.group == 0));
  const Kernel kern = choose(ctx.cpu(), m, w);
  const size_t scratch_bytes = cpu::quant_acts_bytes(w, m);
  void* scratch = scratch_bytes ? ctx.scratch(0, scratch_bytes, 3) : nullptr;
  const cpu::QuantActs acts = cpu::quant_acts_prepare(w, x, m, scratch);
  const int nt = m * n * std::max<int64_t>(k, 1) < kMinParallelWork ? 1 : ctx.threads();
  if (nt == 1) return kern.fn(acts, w, y, bias, 0, m, 0, n);
  const bool split_rows = n >= 2 * kRowAlign * nt || m < 2 * kRowAlign;
  ctx.pool().run([&](int t, int count) {
    int64_t b, e;
    if (split_rows) {
      chunk(n, kRowAlign, t, count, &b, &e);
      if (b < e) kern.fn(acts, w, y, bias, 0, m, b, e);
    } else {
      chunk(m, kRowAlign, t, count, &b, &e);
      if (b < e) kern.fn(acts, w, y, bias, b, e, 0, n);
    }
  });
}

const char* matmul_quantized_kernel_name(const CpuFeatures& cpu, int64_t m, const WeightMatrix& w) {
  return choose(cpu, m, w).name;
}

}  // namespace tern
