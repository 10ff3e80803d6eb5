#include "kernels/cpu/read_bandwidth.h"

#include <immintrin.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <vector>

namespace tern {

namespace {

double now_s() { return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count(); }

// Sum of floats over [p, p + bytes) with 8 independent accumulators (4 cache lines per iteration),
// optionally prefetching `prefetch` bytes ahead.
__attribute__((target("avx2"))) float sum_avx2(const char* p, size_t bytes, size_t prefetch) {
  __m256 acc[8];
  for (auto& a : acc) a = _mm256_setzero_ps();
  const float* f = reinterpret_cast<const float*>(p);
  for (size_t i = 0; i + 64 <= bytes / 4; i += 64) {
    if (prefetch) {
      for (int c = 0; c < 4; ++c) _mm_prefetch(p + i * 4 + prefetch + 64 * c, _MM_HINT_T0);
    }
    for (int u = 0; u < 8; ++u) acc[u] = _mm256_add_ps(acc[u], _mm256_load_ps(f + i + 8 * u));
  }
  for (int u = 1; u < 8; ++u) acc[0] = _mm256_add_ps(acc[0], acc[u]);
  alignas(32) float t[8];
  _mm256_store_ps(t, acc[0]);
  return t[0] + t[1] + t[2] + t[3] + t[4] + t[5] + t[6] + t[7];
}

// The same sum over NS equal sub-ranges read side by side (one line of each per step), as the GEMV
// reads several far-apart weight rows at once.
template <int NS>
__attribute__((target("avx2"))) float sum_avx2_streams(const char* p, size_t bytes) {
  __m256 acc[NS];
  for (auto& a : acc) a = _mm256_setzero_ps();
  const size_t part = bytes / NS / 64 * 64;
  const float* f[NS];
  for (int s = 0; s < NS; ++s) f[s] = reinterpret_cast<const float*>(p + part * size_t(s));
  for (size_t i = 0; i + 16 <= part / 4; i += 16) {
    for (int s = 0; s < NS; ++s) {
      acc[s] = _mm256_add_ps(acc[s], _mm256_add_ps(_mm256_load_ps(f[s] + i), _mm256_load_ps(f[s] + i + 8)));
    }
  }
  for (int u = 1; u < NS; ++u) acc[0] = _mm256_add_ps(acc[0], acc[u]);
  alignas(32) float t[8];
  _mm256_store_ps(t, acc[0]);
  return t[0] + t[1] + t[2] + t[3] + t[4] + t[5] + t[6] + t[7];
}

__attribute__((target("avx512f"))) float sum_avx512(const char* p, size_t bytes, size_t prefetch) {
  __m512 acc[4];
  for (auto& a : acc) a = _mm512_setzero_ps();
  const float* f = reinterpret_cast<const float*>(p);
  for (size_t i = 0; i + 64 <= bytes / 4; i += 64) {
    if (prefetch) {
      for (int c = 0; c < 4; ++c) _mm_prefetch(p + i * 4 + prefetch + 64 * c, _MM_HINT_T0);
    }
    for (int u = 0; u < 4; ++u) acc[u] = _mm512_add_ps(acc[u], _mm512_load_ps(f + i + 16 * u));
  }
  return _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(acc[0], acc[1]), _mm512_add_ps(acc[2], acc[3])));
}

float sum_scalar(const char* p, size_t bytes) {
  const float* f = reinterpret_cast<const float*>(p);
  float s = 0;
  for (size_t i = 0; i < bytes / 4; ++i) s += f[i];
  return s;
}

struct FreeDeleter {
  void operator()(char* p) const { std::free(p); }
};

}  // namespace

double read_bandwidth_gbs(ThreadPool& pool, const CpuFeatures& cpu, const char* buf, size_t bytes, ReadPattern pattern,
                          int reps, bool use_avx512) {
  const bool avx512 = use_avx512 && cpu.avx512 && (pattern == ReadPattern::kPlain || pattern == ReadPattern::kPrefetch1K);
  const size_t prefetch = pattern == ReadPattern::kPrefetch1K ? 1024 : 0;
  double best = 0;
  std::vector<float> partial(size_t(pool.size()));
  for (int r = 0; r < reps; ++r) {
    const double t0 = now_s();
    pool.run([&](int t, int nt) {
      const size_t chunk = bytes / size_t(nt) / 256 * 256;
      const char* p = buf + chunk * size_t(t);
      float s;
      if (!cpu.avx2) s = sum_scalar(p, chunk);
      else if (pattern == ReadPattern::kStreams4) s = sum_avx2_streams<4>(p, chunk);
      else if (pattern == ReadPattern::kStreams8) s = sum_avx2_streams<8>(p, chunk);
      else if (avx512) s = sum_avx512(p, chunk, prefetch);
      else s = sum_avx2(p, chunk, prefetch);
      partial[size_t(t)] = s;
    });
    const double dt = now_s() - t0;
    best = std::max(best, double(bytes / size_t(pool.size()) / 256 * 256 * size_t(pool.size())) / dt / 1e9);
  }
  volatile float sink = partial[0];
  (void)sink;
  return best;
}

double best_read_bandwidth_gbs(ThreadPool& pool, const CpuFeatures& cpu, const char* buf, size_t bytes, int reps) {
  double best = 0;
  for (ReadPattern p : {ReadPattern::kPlain, ReadPattern::kPrefetch1K, ReadPattern::kStreams4, ReadPattern::kStreams8}) {
    best = std::max(best, read_bandwidth_gbs(pool, cpu, buf, bytes, p, reps));
  }
  return best;
}

double copy_bandwidth_gbs(ThreadPool& pool, char* dst, const char* src, size_t bytes, int reps) {
  double best = 0;
  for (int r = 0; r < reps; ++r) {
    const double t0 = now_s();
    pool.run([&](int t, int nt) {
      const size_t chunk = bytes / size_t(nt) / 4096 * 4096;
      std::memcpy(dst + chunk * size_t(t), src + chunk * size_t(t), chunk);
    });
    const double dt = now_s() - t0;
    const size_t moved = bytes / size_t(pool.size()) / 4096 * 4096 * size_t(pool.size());
    best = std::max(best, 2.0 * double(moved) / dt / 1e9);
  }
  return best;
}

BandwidthResult measure_memory_bandwidth(ThreadPool& pool, const CpuFeatures& cpu, size_t bytes, int reps) {
  const size_t align = size_t(2) << 20;  // transparent huge pages where the kernel offers them
  bytes = (bytes + align - 1) / align * align;
  std::unique_ptr<char, FreeDeleter> src(static_cast<char*>(std::aligned_alloc(align, bytes)));
  std::unique_ptr<char, FreeDeleter> dst(static_cast<char*>(std::aligned_alloc(align, bytes)));
  if (!src || !dst) return {};
  // Touch every page first (from the threads that will read it), so page faults are not timed.
  pool.run([&](int t, int nt) {
    const size_t chunk = bytes / size_t(nt);
    std::memset(src.get() + chunk * size_t(t), 1, chunk);
    std::memset(dst.get() + chunk * size_t(t), 0, chunk);
  });
  BandwidthResult r;
  r.read_gbs = best_read_bandwidth_gbs(pool, cpu, src.get(), bytes, reps);
  r.copy_gbs = copy_bandwidth_gbs(pool, dst.get(), src.get(), bytes, reps);
  return r;
}

}  // namespace tern
