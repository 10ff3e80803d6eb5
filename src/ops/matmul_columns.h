// Internal to the matmul front door (ops/matmul*.cpp): one product y[m, n] = x[m, k] · wᵀ prepared for
// the threads. Whatever a kernel needs once per call (x rounded or quantized for an integer kernel, x
// permuted for act-order) is done when the task is made, into caller-given scratch; run(t, b, e) then
// computes y's columns [b, e) (weight rows b..e-1) on thread t, for any split the caller picks in
// multiples of `align`. matmul() splits one task over the threads; matmul_group() splits several in one
// parallel region.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <span>

#include "core/exec_context.h"
#include "kernels/cpu/matmul_kernels.h"

namespace tern {

struct ColumnTask {
  int64_t n = 0;      // output columns (weight rows)
  int64_t align = 1;  // ranges start at multiples of this (the kernel's register / block tile)
  std::function<void(int thread, int64_t b, int64_t e)> run;
  int64_t row_bytes = 0;  // weight bytes one column streams (0: unknown); sizes the dynamic items
};

// Weights one dynamic work item streams: ~5-10 µs of one thread at 25-50 GB/s, so the region's tail
// (the last item, running alone) is short, while claiming an item (one atomic add on a line the
// threads share) is noise beside it.
constexpr int64_t kColumnItemBytes = 256 << 10;

// Runs every task's columns over the pool in items of about kColumnItemBytes of weights (whole
// multiples of the task's align) taken from a shared counter, task after task: the threads finish
// together however unevenly they stream. Every column is computed by one call of its task's kernel
// over an aligned range, as with a static split, so results do not depend on which thread took it.
void run_column_tasks(ExecContext& ctx, std::span<const ColumnTask> tasks);

// Contiguous chunk t of nt over [0, n) in units of `align`.
inline void column_chunk(int64_t n, int64_t align, int t, int nt, int64_t* b, int64_t* e) {
  const int64_t units = (n + align - 1) / align;
  *b = std::min(n, units * t / nt * align);
  *e = std::min(n, units * (t + 1) / nt * align);
}

// The small-m (m <= cpu::kGemvMaxRows) tasks of each weight family. *_scratch_bytes is what the task
// needs at `scratch` (64-byte aligned; 0 = none); the scratch must stay untouched until the task ran.
size_t gguf_gemv_scratch_bytes(const ExecContext& ctx, const cpu::MatmulArgs& a);
ColumnTask gguf_gemv_task(ExecContext& ctx, const cpu::MatmulArgs& a, void* scratch);
size_t quantized_gemv_scratch_bytes(const ExecContext& ctx, const cpu::MatmulArgs& a);
ColumnTask quantized_gemv_task(const ExecContext& ctx, const cpu::MatmulArgs& a, void* scratch);

}  // namespace tern
