// The FMA-throughput probe shared by bench_fma_peak and bench_matmul (which reports GEMM GFLOP/s as
// a fraction of the peak measured in the same run, so the figure survives a shared machine).
// 12 independent accumulator chains hide the FMA latency on 2 pipes; the loop has no loads.
#pragma once

#include <immintrin.h>

#include <time.h>

#include <algorithm>
#include <cstdint>
#include <vector>

#include "bench_common.h"
#include "core/thread_pool.h"

namespace tern::bench {
namespace {

constexpr int kChains = 12;

// Runs `iters` steps of kChains 8-lane FMAs; returns a value derived from every chain so nothing is dead code.
__attribute__((target("avx2,fma"))) float fma_loop(int64_t iters, float seed) {
  __m256 acc[kChains];
  for (int c = 0; c < kChains; ++c) acc[c] = _mm256_set1_ps(seed + float(c));
  const __m256 a = _mm256_set1_ps(0.999999f), b = _mm256_set1_ps(1e-7f);
  for (int64_t i = 0; i < iters; ++i) {
#pragma GCC unroll 12
    for (int c = 0; c < kChains; ++c) acc[c] = _mm256_fmadd_ps(acc[c], a, b);
  }
  __m256 s = acc[0];
  for (int c = 1; c < kChains; ++c) s = _mm256_add_ps(s, acc[c]);
  alignas(32) float out[8];
  _mm256_store_ps(out, s);
  return out[0] + out[7];
}

// GFLOP/s of all pool threads running fma_loop(iters) at once, best of `reps`.
// cpu_time: time a 1-thread pool by its CPU time (thread_cpu_s) instead of the wall clock.
inline double fma_peak_gflops(ThreadPool& pool, int64_t iters, int reps, bool cpu_time = false) {
  std::vector<float> sink(size_t(pool.size()) * 16);
  double best = 1e30;
  for (int r = 0; r < reps; ++r) {
    const double t0 = now_s(), c0 = thread_cpu_s();
    pool.run([&](int t, int) { sink[size_t(t) * 16] = fma_loop(iters, float(t)); });
    best = std::min(best, cpu_time && pool.size() == 1 ? thread_cpu_s() - c0 : now_s() - t0);
  }
  return double(iters) * kChains * 8 * 2 * pool.size() / best / 1e9;
}

}  // namespace
}  // namespace tern::bench
