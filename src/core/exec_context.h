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

// What a bf16 matmul with m > 1 rounds its activations to. kF32 (the default) keeps x in f32, so
// every batch size gives the same logits as the fp32 reference (and as m = 1 decode). kBf16 lets the
// AVX512-BF16 / AMX-BF16 dot-product GEMMs run: faster prefill, but x rounded to 8 significant bits
// (logits ~0.05 off on docs-llama-28m) and a row's result then depends on the batch it ran in.
enum class ActivationPrecision { kF32, kBf16 };

// How a decode GEMV region (m <= 8 rows of x) shares its weight rows among the threads. kDynamic (the
// default): items of ~256 KB of weights from a shared counter, so a thread that streams slower or
// starts late takes fewer. kStatic: one fixed contiguous share per thread (the split before; kept so
// a bench can compare the two in one process). Both give bitwise the same results.
enum class ColumnSplit { kDynamic, kStatic };

class ExecContext {
 public:
  ExecContext(ThreadPool& pool, CpuFeatures cpu, ActivationPrecision activations = ActivationPrecision::kF32)
      : pool_(&pool), cpu_(cpu), activations_(activations), scratch_(pool.size()) {}

  ThreadPool& pool() const { return *pool_; }
  const CpuFeatures& cpu() const { return cpu_; }
  int threads() const { return pool_->size(); }
  ActivationPrecision activations() const { return activations_; }
  ColumnSplit column_split() const { return column_split_; }
  void set_column_split(ColumnSplit s) { column_split_ = s; }

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
    Buffer slots[6];
  };
  ThreadPool* pool_;
  CpuFeatures cpu_;
  ActivationPrecision activations_;
  ColumnSplit column_split_ = ColumnSplit::kDynamic;
  std::vector<PerThread> scratch_;
};

}  // namespace tern
