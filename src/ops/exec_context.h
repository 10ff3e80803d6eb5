// What every op needs to run on the CPU: the thread pool, the host's features (already capped
// by the user's choice) and per-thread scratch memory that lives as long as the context.
// Passed down explicitly; there is no global state (DESIGN.md principle 11).
#pragma once

#include <cstddef>
#include <cstdlib>
#include <memory>
#include <vector>

#include "core/cpu_features.h"
#include "core/thread_pool.h"

namespace tern {

class ExecContext {
 public:
  ExecContext(ThreadPool& pool, CpuFeatures cpu) : pool_(&pool), cpu_(cpu), scratch_(pool.size()) {}

  ThreadPool& pool() const { return *pool_; }
  const CpuFeatures& cpu() const { return cpu_; }
  int threads() const { return pool_->size(); }

  // 64-byte aligned scratch for thread `t`, valid until the next call with the same (t, slot).
  // Slots let one kernel hold a few buffers at once (e.g. packed A and packed B).
  void* scratch(int t, size_t bytes, int slot = 0) {
    auto& s = scratch_[t].slots[slot];
    if (s.bytes < bytes) {
      s.ptr.reset(static_cast<char*>(std::aligned_alloc(64, round_up(bytes))));
      s.bytes = round_up(bytes);
    }
    return s.ptr.get();
  }

 private:
  static size_t round_up(size_t n) { return (n + 63) & ~size_t(63); }
  struct FreeDeleter {
    void operator()(char* p) const { std::free(p); }
  };
  struct Buffer {
    std::unique_ptr<char, FreeDeleter> ptr;
    size_t bytes = 0;
  };
  struct PerThread {
    Buffer slots[5];
  };
  ThreadPool* pool_;
  CpuFeatures cpu_;
  std::vector<PerThread> scratch_;
};

}  // namespace tern
