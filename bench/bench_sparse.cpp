// Sparse decode GEMV (m = 1) against its dense twin on the Llama-3.2-1B linear shapes (no LM head):
//   bf16:  dense bf16                      vs 50% unstructured sparse-bitmask bf16 (0.5625 of the bytes)
//   int8:  dense int8 per-channel (W8A16)  vs 2:4 sparse-24-bitmask int8 (0.625 of the bytes)
// For each: µs per call summed over the shapes of one layer (q, k, v, o, gate, up, down), GB/s of the
// bytes each format actually reads, that as % of the read bandwidth measured in the same run, and the
// speed-up over dense; with --threads 1 also the kernel thread's CPU time and the speed-up by it. Weights rotate through copies spanning > 1 GiB, so every call reads DRAM.
// --hot-rows N instead times one [N, 2048] matrix of each format, a single copy called over and over: with
// N = 256 (0.5 MB dense int8, 0.33 MB 2:4) it stays in L2, so the rate is the kernel's own (its
// instructions), not DRAM's; use --reps 200 or so.
//   bench_sparse [--threads N] [--reps 5] [--levels avx2,avx512] [--m 1] [--formats bf16,int8] [--hot-rows N]
#include <algorithm>
#include <cstdio>
#include <random>
#include <vector>

#include "bench_common.h"
#include "core/dtype.h"
#include "ops/matmul.h"

using namespace tern;
using namespace tern::bench;

namespace {

struct Layer {  // the 7 linears of a Llama-3.2-1B layer: (k, n)
  int64_t k, n;
};
constexpr Layer kLayer[] = {{2048, 2048}, {2048, 512}, {2048, 512}, {2048, 2048},
                            {2048, 8192}, {2048, 8192}, {8192, 2048}};

// Everything one weight needs, in owned memory: dense codes, or sparse values + mask + offsets, + scales.
struct Weight {
  std::vector<char> values;
  std::vector<uint8_t> mask;
  std::vector<int64_t> offsets;
  std::vector<float> scales;
  WeightMatrix w;
};

enum class Fmt { DenseBf16, SparseBf16, DenseI8, Sparse24I8 };
const char* fmt_name(Fmt f) {
  switch (f) {
    case Fmt::DenseBf16: return "dense bf16";
    case Fmt::SparseBf16: return "50% bitmask bf16";
    case Fmt::DenseI8: return "dense int8";
    default: return "2:4 int8";
  }
}

Weight make(Fmt f, int64_t n, int64_t k, std::mt19937& rng) {
  Weight wt;
  WeightMatrix& w = wt.w;
  w.rows = n, w.cols = k;
  const bool i8 = f == Fmt::DenseI8 || f == Fmt::Sparse24I8;
  if (i8) wt.scales.assign(size_t(n), 0.01f), w.scales = wt.scales.data();
  if (f == Fmt::DenseBf16 || f == Fmt::DenseI8) {
    wt.values.resize(size_t(n * k) * (i8 ? 1 : 2));
    for (size_t i = 0; i < wt.values.size(); ++i) wt.values[i] = char(rng() % 97 + 1);
    w.data = wt.values.data();
    w.dtype = i8 ? DType::I8 : DType::BF16;
    w.format = i8 ? WeightFormat::Int8Channel : WeightFormat::Dense;
    w.quant_bytes = wt.values.size() + (i8 ? size_t(n) * 4 : 0);
    return wt;
  }
  const int64_t stride = (k + 7) / 8;
  wt.mask.assign(size_t(n * stride), 0);
  wt.offsets.resize(size_t(n));
  int64_t nnz = 0;
  for (int64_t r = 0; r < n; ++r) {
    wt.offsets[size_t(r)] = nnz;
    uint8_t* m = wt.mask.data() + r * stride;
    if (f == Fmt::Sparse24I8) {
      static const uint8_t kNibbles[6] = {0x3, 0x5, 0x6, 0x9, 0xa, 0xc};
      for (int64_t b = 0; b < stride; ++b) m[b] = uint8_t(kNibbles[rng() % 6] | kNibbles[rng() % 6] << 4);
      nnz += k / 2;
    } else {  // exactly half of each row, at random columns
      std::vector<int64_t> cols(static_cast<size_t>(k));
      for (int64_t c = 0; c < k; ++c) cols[size_t(c)] = c;
      std::shuffle(cols.begin(), cols.end(), rng);
      for (int64_t c = 0; c < k / 2; ++c) m[cols[size_t(c)] / 8] |= uint8_t(1u << (cols[size_t(c)] % 8));
      nnz += k / 2;
    }
  }
  wt.values.resize(size_t(nnz) * (i8 ? 1 : 2));
  for (size_t i = 0; i < wt.values.size(); ++i) wt.values[i] = char(rng() % 97 + 1);
  w.format = WeightFormat::SparseBitmask;
  w.dtype = i8 ? DType::I8 : DType::BF16;
  w.data = wt.values.data();
  w.mask = wt.mask.data();
  w.row_offsets = wt.offsets.data();
  w.nnz = nnz;
  w.quant_bytes = wt.values.size() + wt.mask.size() + (i8 ? size_t(n) * 4 : 0);
  return wt;
}

}  // namespace

int main(int argc, char** argv) {
  const int reps = std::stoi(arg_value(argc, argv, "--reps", "5"));
  const int64_t m = std::stoll(arg_value(argc, argv, "--m", "1"));
  std::vector<int> thread_counts = {1, 2};
  if (const std::string t = arg_value(argc, argv, "--threads", ""); !t.empty()) thread_counts = {std::stoi(t)};
  const CpuFeatures host = CpuFeatures::detect();
  std::printf("cpu: %s\n", host.describe().c_str());
  // Copies of a whole layer in each format, > 1 GiB each way (a layer is ~50-120 MB).
  std::mt19937 rng(1);
  const Fmt fmts[] = {Fmt::DenseBf16, Fmt::SparseBf16, Fmt::DenseI8, Fmt::Sparse24I8};
  // --formats bf16 / int8: only that pair (dense and sparse), which halves the set-up time.
  bool want[4] = {true, true, true, true};
  if (const std::string f = arg_value(argc, argv, "--formats", "bf16,int8"); f != "bf16,int8" && f != "int8,bf16") {
    const bool bf16 = f == "bf16", int8 = f == "int8";
    if (!bf16 && !int8) {
      std::fprintf(stderr, "bench_sparse: --formats takes bf16, int8 or bf16,int8\n");
      return 1;
    }
    want[0] = want[1] = bf16, want[2] = want[3] = int8;
  }
  std::vector<Layer> layers(std::begin(kLayer), std::end(kLayer));
  const int64_t hot_rows = std::stoll(arg_value(argc, argv, "--hot-rows", "0"));
  if (hot_rows < 0) {
    std::fprintf(stderr, "bench_sparse: --hot-rows takes a row count\n");
    return 1;
  }
  if (hot_rows > 0) {
    layers = {{2048, hot_rows}};
    std::printf("hot: one [%lld, 2048] matrix per format, one copy (cache-resident when small; 'of bw' is then > 100%%)\n",
                (long long)hot_rows);
  }
  std::vector<std::vector<std::vector<Weight>>> copies(4);  // [fmt][copy][linear]
  for (int f = 0; f < 4; ++f) {
    if (!want[f]) continue;
    size_t bytes = 0;
    for (const Layer& l : layers) bytes += size_t(l.n * l.k);
    const size_t layer_bytes = bytes * (fmts[f] == Fmt::DenseBf16 ? 2 : 1) / (fmts[f] == Fmt::DenseI8 || fmts[f] == Fmt::DenseBf16 ? 1 : 2);
    const int n_copies = hot_rows > 0 ? 1 : int(std::max<size_t>(2, (size_t(1) << 30) / layer_bytes));
    for (int c = 0; c < n_copies; ++c) {
      copies[size_t(f)].emplace_back();
      for (const Layer& l : layers) copies[size_t(f)].back().push_back(make(fmts[f], l.n, l.k, rng));
    }
  }
  int64_t max_dim = 0;
  for (const Layer& l : layers) max_dim = std::max({max_dim, l.k, l.n});
  std::vector<float> x(size_t(m * max_dim)), y(size_t(m * max_dim));
  for (size_t i = 0; i < x.size(); ++i) x[i] = float(int(i % 17) - 8) / 8.f;
  // With 1 thread the kernel runs on this thread: its CPU time (cpu us, min over reps) leaves out the time
  // other processes held the core, which on a loaded machine is the steadier measure of the kernel's cost.
  std::printf("%-7s %-7s %-18s %-26s %10s %9s %9s %8s %9s %10s %9s %11s %8s\n", "threads", "level", "format", "kernel (m=1 up)",
              "us/layer", "MB/layer", "GB/s", "of bw", "vs dense", "cpu us", "(cpu)", "min-call us", "(min)");
  std::printf("%s\n", "(cpu us: with 1 thread; min-call us: the sum over the 7 linears of each one's fastest call)");
  for (int nt : thread_counts) {
    ThreadPool pool(nt);
    const double bw = measure_memory_bandwidth(pool, host).read_gbs;
    for (const auto& level : split_commas(arg_value(argc, argv, "--levels", "avx2,avx512"))) {
      ExecContext ctx(pool, host.capped(level));
      double dense_us[2] = {0, 0}, dense_cpu_us[2] = {0, 0}, dense_min_us[2] = {0, 0};
      for (int f = 0; f < 4; ++f) {
        if (!want[f]) continue;
        const auto& cs = copies[size_t(f)];
        size_t layer_bytes = 0;
        for (const Weight& w : cs[0]) layer_bytes += w.w.bytes();
        double best = 1e30, best_cpu = 1e30;
        std::vector<double> call_min(layers.size(), 1e30);  // per linear: the fastest of all its calls
        for (int r = 0; r < reps; ++r) {
          const double t0 = now_s(), c0 = thread_cpu_s();
          for (const auto& layer : cs) {
            for (size_t l = 0; l < layer.size(); ++l) {
              const double tc = now_s();
              matmul(ctx, x.data(), m, layer[l].w, y.data());
              call_min[l] = std::min(call_min[l], now_s() - tc);
            }
          }
          best = std::min(best, (now_s() - t0) / double(cs.size()));
          best_cpu = std::min(best_cpu, (thread_cpu_s() - c0) / double(cs.size()));
        }
        double min_us = 0;
        for (double t : call_min) min_us += t * 1e6;
        const double us = best * 1e6, gbs = double(layer_bytes) / best / 1e9, cpu_us = best_cpu * 1e6;
        if (f == 0 || f == 2) dense_us[f / 2] = us, dense_cpu_us[f / 2] = cpu_us, dense_min_us[f / 2] = min_us;
        std::printf("%-7d %-7s %-18s %-26s %10.1f %9.1f %9.1f %7.1f%% %8.2fx", nt, level.c_str(), fmt_name(fmts[f]),
                    matmul_kernel_name(ctx, m, cs[0][std::min<size_t>(4, cs[0].size() - 1)].w), us, double(layer_bytes) / 1e6, gbs, 100 * gbs / bw,
                    dense_us[f / 2] / us);
        if (nt == 1) std::printf(" %10.1f %8.2fx", cpu_us, dense_cpu_us[f / 2] / cpu_us);
        std::printf(" %10.1f %8.2fx\n", min_us, dense_min_us[f / 2] / min_us);
        std::fflush(stdout);
      }
    }
    std::printf("        read bandwidth (same run, %d threads): %.1f GB/s\n", nt, bw);
  }
  return 0;
}
