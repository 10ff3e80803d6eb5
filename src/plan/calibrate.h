// `tern plan --calibrate`: measures this machine as a catalog device ("this-machine"): memory
// (MemTotal), read bandwidth (the decode ceiling), the bf16 GEMM rate of tern's own kernels (the
// prefill ceiling) and how much of the bandwidth tern's GEMV reaches (the decode efficiency).
#pragma once

#include <cstddef>

#include "core/status.h"
#include "core/exec_context.h"
#include "plan/hardware.h"

namespace tern::plan {

struct CalibrateOptions {
  size_t bandwidth_bytes = size_t(512) << 20;  // probe buffer, far beyond the last-level cache
  size_t gemv_bytes = size_t(256) << 20;       // bf16 weights streamed by the GEMV probe
  int reps = 3;                                // median of
  // Time by the process's CPU time ÷ threads instead of the wall clock: on a machine shared with
  // other busy processes this measures what the hardware does while we run, not how often we run.
  bool cpu_time = false;
};

struct Calibration {
  double read_gbs = 0;     // read ceiling
  double gemv_gbs = 0;     // tern's bf16 GEMV, m = 1
  double gemm_gflops = 0;  // tern's bf16 GEMM, m = 512 (the engine's prefill step)
  double batched_gflops = 0;  // tern's bf16 matmul at m = 16 over weights streamed from memory (batched decode)
  double small_gemv_gbs = 0;  // tern's bf16 GEMV, m = 1, over 512 x 512 matrices streamed from memory
  double matmul_dispatch_us = 0;  // one m = 1 call over a cached 64 x 64 matrix
  Device device;           // the catalog entry built from them
};

// Seconds of CPU time this process has used (all threads).
double process_cpu_seconds();

// Measures either clock from construction: wall seconds, or CPU seconds ÷ threads.
class Stopwatch {
 public:
  Stopwatch(bool cpu_time, int threads);
  double seconds() const;

 private:
  bool cpu_time_;
  int threads_;
  double cpu0_, wall0_;
};

Result<Calibration> calibrate_this_machine(ExecContext& ctx, const CalibrateOptions& options = {});

}  // namespace tern::plan
