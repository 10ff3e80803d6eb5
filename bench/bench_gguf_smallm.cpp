// GGUF matmul time at small m (batched decode: m rows of x, one weight pass) on the Llama-3.2-1B shapes,
// per format: µs per call and per row of x, and the per-row cost relative to m = 1 (below 1: the weight
// decode is shared by the rows).
//   bench_gguf_smallm [--threads 1] [--reps 7] [--types Q4_K,Q6_K,Q4_0] [--m 1,2,3,4,8]
//                     [--shapes 2048x2048,512x2048,8192x2048,2048x8192] [--isa avx2] [--cpu-time] [--hot]
// Shapes are n x k (output columns x inputs). Copies of the matrix (>= 64 MB in all) are cycled so the
// weights come from memory, as in decode (--hot: one copy, cache-resident where it fits: the kernel's
// arithmetic alone). --cpu-time (with --threads 1): the thread's CPU clock, so other
// processes taking turns on the core do not inflate the figures.
#include <algorithm>
#include <random>
#include <sstream>
#include <stdexcept>
#include <vector>

#include "bench_common.h"
#include "core/dtype.h"
#include "kernels/cpu/gguf_blocks.h"
#include "ops/matmul.h"

using namespace tern;
using namespace tern::bench;

namespace {

std::vector<std::string> split(const std::string& s) {
  std::vector<std::string> out;
  std::stringstream ss(s);
  for (std::string t; std::getline(ss, t, ',');)
    if (!t.empty()) out.push_back(t);
  return out;
}

}  // namespace

int run(int argc, char** argv);

int main(int argc, char** argv) {
  try {  // a malformed number in an option is one error line, not a crash
    return run(argc, argv);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_gguf_smallm: error: bad option value (%s)\n", e.what());
    return 1;
  }
}

int run(int argc, char** argv) {
  const bool cpu_time = has_flag(argc, argv, "--cpu-time"), hot = has_flag(argc, argv, "--hot");
  auto clock_s = [cpu_time] { return cpu_time ? thread_cpu_s() : now_s(); };
  const int reps = std::stoi(arg_value(argc, argv, "--reps", "7"));
  const int threads = std::stoi(arg_value(argc, argv, "--threads", "1"));
  const auto types = split(arg_value(argc, argv, "--types", "Q4_K,Q6_K,Q4_0"));
  const auto shapes = split(arg_value(argc, argv, "--shapes", "2048x2048,512x2048,8192x2048,2048x8192"));
  std::vector<int64_t> ms;
  for (const auto& v : split(arg_value(argc, argv, "--m", "1,2,3,4,8"))) {
    ms.push_back(std::stoll(v));
    if (ms.back() < 1) throw std::invalid_argument("--m " + v);
  }
  if (ms.empty() || reps < 1 || threads < 1) throw std::invalid_argument("--m / --reps / --threads");
  const std::string isa = arg_value(argc, argv, "--isa", "");
  ThreadPool pool(threads);
  ExecContext ctx(pool, isa.empty() ? CpuFeatures::detect() : CpuFeatures::detect().capped(isa));
  std::printf("cpu: %s (%s), %d thread(s), best of %d%s\n", cpu_model().c_str(), ctx.cpu().describe().c_str(), threads,
              reps, cpu_time ? ", thread CPU time" : "");
  std::printf("%-5s %-10s %2s %-28s %10s %10s %9s\n", "type", "n x k", "m", "kernel", "us/call", "us/row", "row/m=1");
  std::mt19937 rng(1);
  std::normal_distribution<float> nd(0.f, 1.f);
  for (const auto& shape : shapes) {
    const int64_t n = std::stoll(shape.substr(0, shape.find('x'))), k = std::stoll(shape.substr(shape.find('x') + 1));
    if (n <= 0 || k <= 0) throw std::invalid_argument("shape " + shape);
    std::vector<float> wf(size_t(n * k));
    for (auto& v : wf) v = nd(rng);
    const int64_t max_m = *std::max_element(ms.begin(), ms.end());
    std::vector<float> x(size_t(max_m * k)), y(size_t(max_m * n));
    for (auto& v : x) v = nd(rng);
    for (const auto& name : types) {
      const auto t = gguf_type_from_name(name);
      if (!t) {
        std::fprintf(stderr, "bench_gguf_smallm: error: unknown type %s\n", name.c_str());
        return 1;
      }
      if (!gguf_traits(*t).weights || k % gguf_traits(*t).block_elems != 0) {
        std::fprintf(stderr, "bench_gguf_smallm: error: %s needs k a multiple of %d (shape %s)\n", name.c_str(),
                     gguf_traits(*t).block_elems, shape.c_str());
        return 1;
      }
      const size_t rb = gguf_row_bytes(*t, k), bytes = rb * size_t(n);
      const int64_t copies = hot ? 1 : std::max<int64_t>(2, int64_t((size_t(64) << 20) / bytes) + 1);
      Buffer arena = alloc_buffer(bytes * size_t(copies));
      for (int64_t r = 0; r < n; ++r) gguf_quantize_row(*t, wf.data() + r * k, arena.get() + size_t(r) * rb, k);
      for (int64_t c = 1; c < copies; ++c) std::memcpy(arena.get() + size_t(c) * bytes, arena.get(), bytes);
      WeightMatrix w;
      w.rows = n, w.cols = k, w.format = WeightFormat::Gguf, w.gguf_type = int(*t), w.quant_bytes = bytes;
      double per_row_m1 = 0;
      for (int64_t m : ms) {
        double best = 1e30;
        for (int r = 0; r < reps; ++r) {
          const double t0 = clock_s();
          for (int64_t c = 0; c < copies; ++c) {
            w.data = arena.get() + size_t(c) * bytes;
            matmul(ctx, x.data(), m, w, y.data());
          }
          best = std::min(best, (clock_s() - t0) / double(copies));
        }
        const double per_row = best / double(m);
        if (m == 1) per_row_m1 = per_row;
        std::printf("%-5s %-10s %2lld %-28s %10.1f %10.1f %9.2f\n", name.c_str(), shape.c_str(), (long long)m,
                    matmul_kernel_name(ctx, m, w), best * 1e6, per_row * 1e6, per_row_m1 > 0 ? per_row / per_row_m1 : 0.0);
      }
    }
  }
  return 0;
}
