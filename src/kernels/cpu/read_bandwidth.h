// Measures this machine's memory bandwidth: the physical limit of a memory-bound decode step, against
// which every decode figure is reported (and which `tern plan --calibrate` will use).
// GB = 1e9 bytes. Each thread of the pool reads its own contiguous part, as the GEMV does.
#pragma once

#include <cstddef>

#include "core/cpu_features.h"
#include "core/thread_pool.h"

namespace tern {

enum class ReadPattern {
  kPlain,       // one sequential stream per thread, hardware prefetch only
  kPrefetch1K,  // one stream with software prefetch 1 KiB ahead
  kStreams4,    // 4 side-by-side streams per thread (AVX2): keeps more hardware prefetchers busy
  kStreams8,
};

// Best of `reps` passes over buf[0, bytes) with AVX2 loads (AVX-512 for the single-stream patterns
// when use_avx512 and the CPU has it).
double read_bandwidth_gbs(ThreadPool& pool, const CpuFeatures& cpu, const char* buf, size_t bytes, ReadPattern pattern,
                          int reps, bool use_avx512 = true);

// The read ceiling: the best over every pattern above.
double best_read_bandwidth_gbs(ThreadPool& pool, const CpuFeatures& cpu, const char* buf, size_t bytes, int reps);

// memcpy bandwidth, counted as bytes read + bytes written per second.
double copy_bandwidth_gbs(ThreadPool& pool, char* dst, const char* src, size_t bytes, int reps);

struct BandwidthResult {
  double read_gbs = 0;  // best_read_bandwidth_gbs
  double copy_gbs = 0;
};

// Allocates `bytes` (much larger than the last-level cache), touches it, and measures both.
BandwidthResult measure_memory_bandwidth(ThreadPool& pool, const CpuFeatures& cpu, size_t bytes = size_t(1) << 30,
                                         int reps = 5);

}  // namespace tern
