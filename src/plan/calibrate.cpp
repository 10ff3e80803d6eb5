#include "plan/calibrate.h"

#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <vector>

#include "core/dtype.h"
#include "kernels/cpu/read_bandwidth.h"
#include "ops/matmul.h"
#include "plan/memory_budget.h"

namespace tern::plan {

namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

// bf16 weights [rows, cols] of small random-looking values (the rate does not depend on them).
std::vector<uint16_t> weights_bf16(size_t n) {
  std::vector<uint16_t> w(n);
  uint32_t x = 12345;
  for (auto& v : w) {
    x = x * 1664525u + 1013904223u;
    v = f32_to_bf16(float(int(x >> 16) - 32768) * 1e-6f);
  }
  return w;
}

// Best-of-reps GB/s of y[1, n] = x · Wᵀ over matrices that together far exceed the caches.
double gemv_gbs(ExecContext& ctx, size_t total_bytes, int reps) {
  const int64_t rows = 4096, cols = 2048;
  const size_t per = size_t(rows * cols);
  const int n_mats = std::max<int>(2, int(total_bytes / (per * 2)));
  std::vector<uint16_t> w = weights_bf16(per * size_t(n_mats));
  std::vector<float> x(size_t(cols), 0.5f);
  std::vector<float> y(static_cast<size_t>(rows));
  auto pass = [&] {
    for (int i = 0; i < n_mats; ++i) {
      WeightMatrix m;
      m.data = w.data() + size_t(i) * per, m.dtype = DType::BF16, m.rows = rows, m.cols = cols;
      matmul(ctx, x.data(), 1, m, y.data());
    }
  };
  pass();  // warm-up: page in, spin the pool
  double best = 0;
  for (int r = 0; r < reps; ++r) {
    const auto t0 = Clock::now();
    pass();
    best = std::max(best, double(w.size() * 2) / seconds_since(t0) / 1e9);
  }
  return best;
}

// Best-of-reps GFLOP/s of a prefill-shaped GEMM: x [256, 2048] · W [2048, 2048]ᵀ.
double gemm_gflops(ExecContext& ctx, int reps) {
  const int64_t m = 256, n = 2048, k = 2048;
  std::vector<uint16_t> w = weights_bf16(size_t(n * k));
  std::vector<float> x(size_t(m * k), 0.25f), y(size_t(m * n));
  WeightMatrix wm;
  wm.data = w.data(), wm.dtype = DType::BF16, wm.rows = n, wm.cols = k;
  matmul(ctx, x.data(), m, wm, y.data());
  double best = 0;
  for (int r = 0; r < reps; ++r) {
    const auto t0 = Clock::now();
    matmul(ctx, x.data(), m, wm, y.data());
    best = std::max(best, 2.0 * double(m * n * k) / seconds_since(t0) / 1e9);
  }
  return best;
}

}  // namespace

Result<Calibration> calibrate_this_machine(ExecContext& ctx, const CalibrateOptions& o) {
  if (o.reps < 1 || o.bandwidth_bytes < (size_t(1) << 20) || o.gemv_bytes < (size_t(1) << 20)) {
    return Status::error("calibration: reps must be >= 1 and buffers at least 1 MiB");
  }
  TERN_ASSIGN_OR_RETURN(HostMemory host, read_host_memory());
  Calibration c;
  c.read_gbs = measure_memory_bandwidth(ctx.pool(), ctx.cpu(), o.bandwidth_bytes, o.reps).read_gbs;
  c.gemv_gbs = gemv_gbs(ctx, o.gemv_bytes, o.reps);
  c.gemm_gflops = gemm_gflops(ctx, o.reps);
  if (!(c.read_gbs > 0) || !(c.gemv_gbs > 0) || !(c.gemm_gflops > 0)) {
    return Status::error("calibration: a measurement came out empty (timer resolution?)");
  }
  Device& d = c.device;
  d.id = "this-machine";
  d.name = fmt::format("this machine: {} threads, {} (measured by tern plan --calibrate)", ctx.threads(),
                       ctx.cpu().describe());
  d.kind = "cpu";
  d.threads = ctx.threads();
  d.memory_gib = host.total_bytes / double(1ull << 30);
  d.usable_fraction = std::clamp(host.available_bytes / host.total_bytes, 0.05, 0.95);
  d.bandwidth_gbs = c.read_gbs;
  const double tflops = c.gemm_gflops / 1e3;
  d.tflops = {{"f32", tflops}, {"bf16", tflops}, {"fp16", tflops}};
  d.interconnect = "none";
  d.interconnect_gbs = 10;
  d.interconnect_latency_us = 5;
  d.devices_per_node = 1;
  // The GEMV may beat the probe by a few % (its prefetching differs); a step also runs norms,
  // attention and sampling, which the GEMV figure does not see.
  d.decode_efficiency = std::clamp(c.gemv_gbs / c.read_gbs, 0.3, 1.1);
  d.prefill_efficiency = 0.9;  // the GEMM is the ceiling; attention, norms and rope take the rest
  d.runtime_overhead_gib = 0.05;
  d.power_w = 0;        // unknown: edit the catalog entry
  d.price_per_hour = 0;
  return c;
}

}  // namespace tern::plan
