// Memory bandwidth of this machine: the ceiling for decode, which streams every weight once per token.
//   bench_bandwidth [--mib 1024] [--threads N] [--reps 5] [--json]
// Read: sum a buffer with AVX2 (and AVX-512 when present) loads, each thread its own contiguous part,
// with and without software prefetch 1 KiB ahead, and as 4 or 8 side-by-side streams per thread (the better is shown).
// Copy: memcpy between two buffers, reported as bytes read + bytes written per second.
// Threads default to 1 and 2 (or just N with --threads). GB = 1e9 bytes.
#include <vector>

#include "bench_common.h"

using namespace tern;
using namespace tern::bench;

int main(int argc, char** argv) {
  const size_t mib = size_t(std::stoll(arg_value(argc, argv, "--mib", "1024")));
  const int reps = std::stoi(arg_value(argc, argv, "--reps", "5"));
  const bool json = has_flag(argc, argv, "--json");
  std::vector<int> thread_counts = {1, 2};
  if (const std::string t = arg_value(argc, argv, "--threads", ""); !t.empty()) thread_counts = {std::stoi(t)};
  const CpuFeatures cpu = CpuFeatures::detect();
  if (!cpu.avx2) {
    std::fprintf(stderr, "bench_bandwidth needs AVX2 (host: %s)\n", cpu.describe().c_str());
    return 1;
  }
  const size_t bytes = mib << 20;
  Buffer src = alloc_buffer(bytes), dst = alloc_buffer(bytes);

  if (!json) std::printf("buffer %zu MiB, best of %d, cpu: %s\n%8s %14s %19s %17s %16s %14s\n", mib, reps,
                         cpu.describe().c_str(), "threads", "read avx2 GB/s", "+prefetch 1K GB/s", "4/8 streams GB/s", "read avx512 GB/s", "copy GB/s");
  if (json) std::printf("[");
  bool first = true;
  for (int nt : thread_counts) {
    ThreadPool pool(nt);
    const double r2 = read_bandwidth_gbs(pool, cpu, src.get(), bytes, ReadPattern::kPlain, reps, false);
    const double r2p = read_bandwidth_gbs(pool, cpu, src.get(), bytes, ReadPattern::kPrefetch1K, reps, false);
    const double r2s = std::max(read_bandwidth_gbs(pool, cpu, src.get(), bytes, ReadPattern::kStreams4, reps),
                                read_bandwidth_gbs(pool, cpu, src.get(), bytes, ReadPattern::kStreams8, reps));
    const double r5 = cpu.avx512 ? best_read_bandwidth_gbs(pool, cpu, src.get(), bytes, reps) : 0.0;
    const double cp = copy_bandwidth_gbs(pool, dst.get(), src.get(), bytes, reps);
    if (json) {
      std::printf("%s{\"threads\":%d,\"read_avx2_gbs\":%.2f,\"read_avx2_prefetch_gbs\":%.2f,"
                  "\"read_avx2_streams_gbs\":%.2f,\"read_avx512_gbs\":%.2f,\"copy_gbs\":%.2f}",
                  first ? "" : ",", nt, r2, r2p, r2s, r5, cp);
    } else {
      std::printf("%8d %14.2f %19.2f %17.2f %16s %14.2f\n", nt, r2, r2p, r2s,
                  cpu.avx512 ? std::to_string(r5).substr(0, 6).c_str() : "-", cp);
    }
    first = false;
  }
  if (json) std::printf("]\n");
  return 0;
}
