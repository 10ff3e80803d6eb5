#include "kernels/cpu/read_bandwidth.h"

#include <immintrin.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <memory>

namespace tern {

namespace {

// Sums 4-byte lanes with 8 independent accumulators, so loads, not the adds, are the limit.
__attribute__((target("avx2"))) float sum_avx2(const float* p, size_t n) {
  __m256 acc[8];
  for (auto& a : acc) a = _mm256_setzero_ps();
  size_t i = 0;
  for (; i + 64 <= n; i += 64) {
    for (int k = 0; k < 8; ++k) acc[k] = _mm256_add_ps(acc[k], _mm256_load_ps(p + i + 8 * k));
  }
  for (int k = 1; k < 8; ++k) acc[0] = _mm256_add_ps(acc[0], acc[k]);
  alignas(32) float lanes[8];
  _mm256_store_ps(lanes, acc[0]);
  float s = 0;
  for (float l : lanes) s += l;
  for (; i < n; ++i) s += p[i];
  return s;
}

__attribute__((target("avx512f"))) float sum_avx512(const float* p, size_t n) {
  __m512 acc[8];
  for (auto& a : acc) a = _mm512_setzero_ps();
  size_t i = 0;
  for (; i + 128 <= n; i += 128) {
    for (int k = 0; k < 8; ++k) acc[k] = _mm512_add_ps(acc[k], _mm512_load_ps(p + i + 16 * k));
  }
  for (int k = 1; k < 8; ++k) acc[0] = _mm512_add_ps(acc[0], acc[k]);
  float s = _mm512_reduce_add_ps(acc[0]);
  for (; i < n; ++i) s += p[i];
  return s;
}

float sum_scalar(const float* p, size_t n) {
  float s = 0;
  for (size_t i = 0; i < n; ++i) s += p[i];
  return s;
}

struct FreeDeleter {
  void operator()(float* p) const { std::free(p); }
};

}  // namespace

BandwidthResult measure_memory_bandwidth(ThreadPool& pool, const CpuFeatures& cpu, size_t bytes, int passes) {
  using Clock = std::chrono::steady_clock;
  const size_t n = bytes / sizeof(float) / 2 * 2;
  std::unique_ptr<float, FreeDeleter> src(static_cast<float*>(std::aligned_alloc(64, n * sizeof(float))));
  std::unique_ptr<float, FreeDeleter> dst(static_cast<float*>(std::aligned_alloc(64, n * sizeof(float))));
  // First touch from the threads that will read, so pages land near them.
  pool.parallel_for(int64_t(n), 4096, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) src.get()[i] = float(i & 7);
    std::memset(dst.get() + b, 0, size_t(e - b) * sizeof(float));
  });
  auto sum = cpu.avx512 ? sum_avx512 : cpu.avx2 ? sum_avx2 : sum_scalar;
  std::vector<float> sink(size_t(pool.size()));
  BandwidthResult r;
  for (int pass = 0; pass < passes; ++pass) {
    auto t0 = Clock::now();
    pool.run([&](int t, int nt) {
      const size_t b = n * size_t(t) / size_t(nt) / 16 * 16, e = n * size_t(t + 1) / size_t(nt) / 16 * 16;
      sink[size_t(t)] += sum(src.get() + b, (t + 1 == nt ? n : e) - b);
    });
    double s = std::chrono::duration<double>(Clock::now() - t0).count();
    r.read_gbs = std::max(r.read_gbs, double(n * sizeof(float)) / s / 1e9);
    t0 = Clock::now();
    pool.parallel_for(int64_t(n), 4096, [&](int64_t b, int64_t e) {
      std::memcpy(dst.get() + b, src.get() + b, size_t(e - b) * sizeof(float));
    });
    s = std::chrono::duration<double>(Clock::now() - t0).count();
    r.copy_gbs = std::max(r.copy_gbs, 2.0 * double(n * sizeof(float)) / s / 1e9);
  }
  volatile float keep = 0;
  for (float v : sink) keep = keep + v;
  return r;
}

}  // namespace tern
