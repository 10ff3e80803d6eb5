#include "plan/calibrate.h"

#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <ctime>
#include <vector>

#include "core/dtype.h"
#include "core/median.h"
#include "kernels/cpu/read_bandwidth.h"
#include "ops/matmul.h"
#include "plan/memory_budget.h"

namespace tern::plan {

namespace {

double wall_seconds() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

// Median-of-reps read GB/s of the best of the patterns of read_bandwidth.h, timed by `cpu_time`'s clock.
double read_gbs(ExecContext& ctx, size_t bytes, int reps, bool cpu_time) {
  // The probe reads with aligned AVX loads; 2 MiB alignment also lets the kernel use huge pages.
  const size_t align = size_t(2) << 20;
  bytes = (bytes + align - 1) / align * align;
  std::unique_ptr<char, decltype(&std::free)> mem(static_cast<char*>(std::aligned_alloc(align, bytes)), &std::free);
  if (!mem) return 0;
  std::memset(mem.get(), 1, bytes);
  const char* buf = mem.get();
  double best = 0;
  for (ReadPattern p : {ReadPattern::kPlain, ReadPattern::kStreams4, ReadPattern::kStreams8}) {
    std::vector<double> runs;
    for (int r = 0; r < reps; ++r) {
      Stopwatch sw(cpu_time, ctx.threads());
      read_bandwidth_gbs(ctx.pool(), ctx.cpu(), buf, bytes, p, 1);
      runs.push_back(double(bytes) / sw.seconds() / 1e9);
    }
    best = std::max(best, median(runs));  // the best access pattern, each at its typical speed
  }
  return best;
}

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

// Median-of-reps seconds per call of y[1, rows] = x · Wᵀ over bf16 matrices [rows, cols] that
// together far exceed the caches (each call streams its matrix from memory), or over one matrix
// (total_bytes = 0: it stays in cache, so the call costs its dispatch).
double gemv_call_seconds(ExecContext& ctx, int64_t rows, int64_t cols, size_t total_bytes, int reps, bool cpu_time) {
  const size_t per = size_t(rows * cols);
  const int n_mats = total_bytes == 0 ? 1 : std::max<int>(2, int(total_bytes / (per * 2)));
  const int calls = std::max(n_mats, 256);
  std::vector<uint16_t> w = weights_bf16(per * size_t(n_mats));
  std::vector<float> x(size_t(cols), 0.5f);
  std::vector<float> y(static_cast<size_t>(rows));
  auto pass = [&] {
    for (int i = 0; i < calls; ++i) {
      WeightMatrix m;
      m.data = w.data() + size_t(i % n_mats) * per, m.dtype = DType::BF16, m.rows = rows, m.cols = cols;
      matmul(ctx, x.data(), 1, m, y.data());
    }
  };
  pass();  // warm-up: page in, spin the pool
  std::vector<double> runs;
  for (int r = 0; r < reps; ++r) {
    Stopwatch sw(cpu_time, ctx.threads());
    pass();
    runs.push_back(sw.seconds() / calls);
  }
  return median(runs);
}

// Median-of-reps GB/s of y[1, 4096] = x · Wᵀ over [4096, 2048] matrices that together far exceed the caches.
double gemv_gbs(ExecContext& ctx, size_t total_bytes, int reps, bool cpu_time) {
  const int64_t rows = 4096, cols = 2048;
  return double(rows * cols * 2) / gemv_call_seconds(ctx, rows, cols, total_bytes, reps, cpu_time) / 1e9;
}

// Median-of-reps GFLOP/s of a prefill-shaped GEMM: x [512, 2048] · W [2048, 2048]ᵀ (the engine's
// 512-token step). One call is ~40 ms here, too short to time alone on a machine whose clock and
// neighbours vary: each rep repeats it for at least 0.25 s.
double gemm_gflops(ExecContext& ctx, int reps, bool cpu_time) {
  const int64_t m = 512, n = 2048, k = 2048;
  std::vector<uint16_t> w = weights_bf16(size_t(n * k));
  std::vector<float> x(size_t(m * k), 0.25f), y(size_t(m * n));
  WeightMatrix wm;
  wm.data = w.data(), wm.dtype = DType::BF16, wm.rows = n, wm.cols = k;
  Stopwatch first(false, ctx.threads());
  matmul(ctx, x.data(), m, wm, y.data());  // warm-up: page in, spin the pool
  const int iters = std::clamp(int(0.25 / std::max(first.seconds(), 1e-4)) + 1, 1, 64);
  std::vector<double> runs;
  for (int r = 0; r < reps; ++r) {
    Stopwatch sw(cpu_time, ctx.threads());
    for (int i = 0; i < iters; ++i) matmul(ctx, x.data(), m, wm, y.data());
    runs.push_back(2.0 * double(m * n * k) * iters / sw.seconds() / 1e9);
  }
  return median(runs);
}

// Median-of-reps GFLOP/s of a batched decode step's matmuls: x [16, 2048] against bf16 weights
// [rows, 2048] that together far exceed the caches (the engine's m = 9..64 path at 16 sequences).
double batched_gflops(ExecContext& ctx, size_t total_bytes, int reps, bool cpu_time) {
  const int64_t m = 16, rows = 4096, cols = 2048;
  const size_t per = size_t(rows * cols);
  const int n_mats = std::max<int>(2, int(total_bytes / (per * 2)));
  std::vector<uint16_t> w = weights_bf16(per * size_t(n_mats));
  std::vector<float> x(size_t(m * cols), 0.5f), y(size_t(m * rows));
  auto pass = [&] {
    for (int i = 0; i < n_mats; ++i) {
      WeightMatrix wm;
      wm.data = w.data() + size_t(i) * per, wm.dtype = DType::BF16, wm.rows = rows, wm.cols = cols;
      matmul(ctx, x.data(), m, wm, y.data());
    }
  };
  pass();
  std::vector<double> runs;
  for (int r = 0; r < reps; ++r) {
    Stopwatch sw(cpu_time, ctx.threads());
    pass();
    runs.push_back(2.0 * double(m) * double(w.size()) / sw.seconds() / 1e9);
  }
  return median(runs);
}

}  // namespace

double process_cpu_seconds() {
  timespec ts{};
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return double(ts.tv_sec) + double(ts.tv_nsec) * 1e-9;
}

Stopwatch::Stopwatch(bool cpu_time, int threads)
    : cpu_time_(cpu_time), threads_(std::max(threads, 1)), cpu0_(process_cpu_seconds()), wall0_(wall_seconds()) {}

double Stopwatch::seconds() const {
  return cpu_time_ ? (process_cpu_seconds() - cpu0_) / threads_ : wall_seconds() - wall0_;
}

Result<Calibration> calibrate_this_machine(ExecContext& ctx, const CalibrateOptions& o) {
  if (o.reps < 1 || o.bandwidth_bytes < (size_t(1) << 20) || o.gemv_bytes < (size_t(1) << 20)) {
    return Status::error("calibration: reps must be >= 1 and buffers at least 1 MiB");
  }
  TERN_ASSIGN_OR_RETURN(HostMemory host, read_host_memory());
  Calibration c;
  c.read_gbs = read_gbs(ctx, o.bandwidth_bytes, o.reps, o.cpu_time);
  c.gemv_gbs = gemv_gbs(ctx, o.gemv_bytes, o.reps, o.cpu_time);
  c.gemm_gflops = gemm_gflops(ctx, o.reps, o.cpu_time);
  c.batched_gflops = batched_gflops(ctx, o.gemv_bytes, o.reps, o.cpu_time);
  // A small model's matmuls are short: a 512 x 512 call streams 0.5 MB, a few tens of microseconds,
  // and pays a fixed cost the bandwidth does not see (each thread's stream ramping up, the join).
  // That cost beyond bytes ÷ GEMV rate and beyond a cached call's dispatch is the per-call overhead.
  const int64_t small = 512;
  const double t_small = gemv_call_seconds(ctx, small, small, o.gemv_bytes, o.reps, o.cpu_time);
  const double t_cached = gemv_call_seconds(ctx, 64, 64, 0, o.reps, o.cpu_time);
  c.small_gemv_gbs = double(small * small * 2) / t_small / 1e9;
  c.matmul_dispatch_us = t_cached * 1e6;
  if (!(c.read_gbs > 0) || !(c.gemv_gbs > 0) || !(c.gemm_gflops > 0) || !(c.batched_gflops > 0)) {
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
  // A batched decode step's matmuls run at the m = 16 rate; its attention, norms and dispatch are
  // priced on their own (attention_kv_gbs and overhead_us, measured by the engine probe).
  d.batched_decode_efficiency = std::clamp(c.batched_gflops / c.gemm_gflops, 0.05, 1.0);
  // (a cached call's dispatch is in the engine probe's per-layer cost: engine/step_overhead.h)
  d.matmul_call_us = std::max(0.0, t_small * 1e6 - double(small * small * 2) / (c.gemv_gbs * 1e3) - c.matmul_dispatch_us);
  d.runtime_overhead_gib = 0.05;
  d.power_w = 0;        // unknown: edit the catalog entry
  d.price_per_hour = 0;
  return c;
}

}  // namespace tern::plan
