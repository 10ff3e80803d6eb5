// The FLOP/s ceiling of this CPU: a tight loop of independent 256-bit FMAs (AVX2+FMA) on every thread.
//   bench_fma_peak [--threads 1,2] [--seconds 0.3] [--json]
// The probe (bench_fma.h) has no loads, so the figure is what the FMA units alone can do: the
// denominator for "% of FMA peak".
// Reported as GFLOP/s (one FMA lane = 2 FLOP), best of 5 runs per thread count.
#include <cstdio>
#include <string>
#include <vector>

#include "bench_common.h"
#include "bench_fma.h"
#include "core/cpu_features.h"
#include "core/thread_pool.h"

using namespace tern;
using namespace tern::bench;


int main(int argc, char** argv) {
  if (!CpuFeatures::detect().avx2) {
    std::printf("bench_fma_peak: this CPU has no AVX2+FMA\n");
    return 0;
  }
  const double seconds = std::stod(arg_value(argc, argv, "--seconds", "0.3"));
  const bool json = has_flag(argc, argv, "--json");
  std::vector<int> threads = {1, 2};
  if (const std::string t = arg_value(argc, argv, "--threads", ""); !t.empty()) {
    threads.clear();
    size_t b = 0;
    while (b < t.size()) {
      const size_t e = std::min(t.find(',', b), t.size());
      threads.push_back(std::stoi(t.substr(b, e - b)));
      b = e + 1;
    }
  }
  // Calibrate the iteration count on one thread so each run lasts about `seconds`.
  int64_t iters = 1 << 20;
  for (;;) {
    const double t0 = now_s();
    volatile float sink = fma_loop(iters, 1.f);
    (void)sink;
    if (now_s() - t0 > seconds / 4 || iters > (int64_t(1) << 40)) break;
    iters *= 2;
  }
  if (json) std::printf("[");
  for (size_t ti = 0; ti < threads.size(); ++ti) {
    const int nt = threads[ti];
    ThreadPool pool(nt);
    const double gflops = fma_peak_gflops(pool, iters, 5);
    if (json) {
      std::printf("%s{\"threads\":%d,\"fma_gflops\":%.2f}", ti ? "," : "", nt, gflops);
    } else {
      std::printf("threads %d: %.1f GFLOP/s FMA peak (%.1f per thread)\n", nt, gflops, gflops / nt);
    }
  }
  if (json) std::printf("]\n");
  return 0;
}
