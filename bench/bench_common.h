// Shared by bench_bandwidth and bench_matmul: aligned buffers, a wall clock, and the memory read
// bandwidth measurement every decode (GEMV) figure is compared with.
#pragma once

#include <immintrin.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>

#include "core/cpu_features.h"
#include "core/thread_pool.h"

namespace tern::bench {

struct FreeDeleter {
  void operator()(void* p) const { std::free(p); }
};
using Buffer = std::unique_ptr<char, FreeDeleter>;

// 2 MiB aligned (transparent huge pages when the kernel offers them) and touched, so page faults
// are not timed.
inline Buffer alloc_buffer(size_t bytes) {
  const size_t align = size_t(2) << 20;
  bytes = (bytes + align - 1) / align * align;
  Buffer b(static_cast<char*>(std::aligned_alloc(align, bytes)));
  if (!b) {
    std::fprintf(stderr, "cannot allocate %zu bytes\n", bytes);
    std::exit(1);
  }
  for (size_t i = 0; i < bytes; i += 4096) b.get()[i] = char(i >> 12);
  return b;
}

inline double now_s() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

// Sum of floats over [p, p + bytes) with 8 independent accumulators (4 cache lines per iteration),
// optionally prefetching `prefetch` bytes ahead (0: rely on the hardware prefetcher alone).
__attribute__((target("avx2,fma"))) inline float sum_avx2(const char* p, size_t bytes, size_t prefetch) {
  __m256 acc[8];
  for (auto& a : acc) a = _mm256_setzero_ps();
  const float* f = reinterpret_cast<const float*>(p);
  for (size_t i = 0; i + 64 <= bytes / 4; i += 64) {
    if (prefetch)
      for (int c = 0; c < 4; ++c) _mm_prefetch(p + i * 4 + prefetch + 64 * c, _MM_HINT_T0);
    for (int u = 0; u < 8; ++u) acc[u] = _mm256_add_ps(acc[u], _mm256_load_ps(f + i + 8 * u));
  }
  for (int u = 1; u < 8; ++u) acc[0] = _mm256_add_ps(acc[0], acc[u]);
  alignas(32) float t[8];
  _mm256_store_ps(t, acc[0]);
  return t[0] + t[1] + t[2] + t[3] + t[4] + t[5] + t[6] + t[7];
}

// The same sum over NS equal sub-ranges read side by side (one line of each per step): several
// concurrent streams, as the GEMV reads several far-apart weight rows at once, keep more hardware
// prefetchers busy (on the 2-vCPU EPYC, 4-8 streams read ~1.4x faster than one).
template <int NS>
__attribute__((target("avx2,fma"))) inline float sum_avx2_streams(const char* p, size_t bytes) {
  __m256 acc[NS];
  for (auto& a : acc) a = _mm256_setzero_ps();
  const size_t part = bytes / NS / 64 * 64;
  const float* f[NS];
  for (int s = 0; s < NS; ++s) f[s] = reinterpret_cast<const float*>(p + part * size_t(s));
  for (size_t i = 0; i + 16 <= part / 4; i += 16)
    for (int s = 0; s < NS; ++s)
      acc[s] = _mm256_add_ps(acc[s], _mm256_add_ps(_mm256_load_ps(f[s] + i), _mm256_load_ps(f[s] + i + 8)));
  for (int u = 1; u < NS; ++u) acc[0] = _mm256_add_ps(acc[0], acc[u]);
  alignas(32) float t[8];
  _mm256_store_ps(t, acc[0]);
  return t[0] + t[1] + t[2] + t[3] + t[4] + t[5] + t[6] + t[7];
}

__attribute__((target("avx512f"))) inline float sum_avx512(const char* p, size_t bytes, size_t prefetch) {
  __m512 acc[4];
  for (auto& a : acc) a = _mm512_setzero_ps();
  const float* f = reinterpret_cast<const float*>(p);
  for (size_t i = 0; i + 64 <= bytes / 4; i += 64) {
    if (prefetch)
      for (int c = 0; c < 4; ++c) _mm_prefetch(p + i * 4 + prefetch + 64 * c, _MM_HINT_T0);
    for (int u = 0; u < 4; ++u) acc[u] = _mm512_add_ps(acc[u], _mm512_load_ps(f + i + 16 * u));
  }
  alignas(64) float t[16];
  _mm512_store_ps(t, _mm512_add_ps(_mm512_add_ps(acc[0], acc[1]), _mm512_add_ps(acc[2], acc[3])));
  float s = 0;
  for (float v : t) s += v;
  return s;
}

// Best-of-`reps` read bandwidth in GB/s (1e9 bytes/s) over `bytes` of `buf`, each thread reading
// its own contiguous part (as the GEMV does). prefetch: software prefetch distance in bytes (0: none).
// streams (4 or 8): read through sum_avx2_streams instead (AVX2 only, no software prefetch).
inline double read_bandwidth(ThreadPool& pool, const char* buf, size_t bytes, bool avx512, int reps,
                             size_t prefetch = 0, int streams = 1) {
  double best = 0;
  volatile float sink = 0;
  for (int r = 0; r < reps; ++r) {
    float partial[64] = {};
    const double t0 = now_s();
    pool.run([&](int t, int nt) {
      const size_t chunk = bytes / size_t(nt) / 256 * 256;
      const char* p = buf + chunk * size_t(t);
      partial[t % 64] = streams == 4   ? sum_avx2_streams<4>(p, chunk)
                        : streams == 8 ? sum_avx2_streams<8>(p, chunk)
                        : avx512       ? sum_avx512(p, chunk, prefetch)
                                       : sum_avx2(p, chunk, prefetch);
    });
    const double dt = now_s() - t0;
    sink = sink + partial[0];
    best = std::max(best, double(bytes / size_t(pool.size()) / 256 * 256 * size_t(pool.size())) / dt / 1e9);
  }
  return best;
}

// The read ceiling: the best of one plain stream, one stream with software prefetch, 4 and 8 streams.
inline double best_read_bandwidth(ThreadPool& pool, const char* buf, size_t bytes, bool avx512, int reps) {
  return std::max({read_bandwidth(pool, buf, bytes, avx512, reps, 0),
                   read_bandwidth(pool, buf, bytes, avx512, reps, 1024),
                   read_bandwidth(pool, buf, bytes, false, reps, 0, 4),
                   read_bandwidth(pool, buf, bytes, false, reps, 0, 8)});
}

// Minimal `--name value` parsing: returns the value after `name`, or `fallback`.
inline std::string arg_value(int argc, char** argv, const char* name, const std::string& fallback) {
  for (int i = 1; i + 1 < argc; ++i)
    if (std::strcmp(argv[i], name) == 0) return argv[i + 1];
  return fallback;
}
inline bool has_flag(int argc, char** argv, const char* name) {
  for (int i = 1; i < argc; ++i)
    if (std::strcmp(argv[i], name) == 0) return true;
  return false;
}

}  // namespace tern::bench
