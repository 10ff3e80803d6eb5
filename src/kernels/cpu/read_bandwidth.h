// Measures this machine's streaming memory-read bandwidth: the physical limit of a memory-bound
// decode step, against which every decode figure is reported (and which `tern plan` calibrates).
#pragma once

#include <cstddef>

#include "core/cpu_features.h"
#include "core/thread_pool.h"

namespace tern {

struct BandwidthResult {
  double read_gbs = 0;  // 1e9 bytes per second, all threads of the pool reading disjoint parts
  double copy_gbs = 0;  // bytes read + bytes written per second (memcpy-like)
};

// Best of `passes` over a buffer of `bytes` (much larger than the last-level cache).
BandwidthResult measure_memory_bandwidth(ThreadPool& pool, const CpuFeatures& cpu, size_t bytes = size_t(1) << 30,
                                         int passes = 5);

}  // namespace tern
