// GGUF block-format matmul speed on a Llama-3.2-1B shape (k = n = 2048), next to dense BF16.
//   bench_gguf [--threads N] [--reps 5] [--gemm-m 128] [--types Q8_0,Q4_0,Q4_K,Q6_K] [--isa avx2|avx512|...]
// (--isa caps the kernels to that level: CpuFeatures::capped, to compare a kernel with its fallback)
// GEMV (m = 1): µs per call and GB/s of weight bytes; 16 copies of the matrix are cycled so weights
// come from memory, not cache. GEMM (m = --gemm-m): GFLOP/s.
// --cpu-time (with --threads 1): time by the thread's CPU clock, not the wall clock, so a loaded machine
// (other processes taking turns on the cores) does not inflate the figures; the kernel runs on the calling thread.
#include <random>
#include <vector>

#include "bench_common.h"
#include "core/dtype.h"
#include "kernels/cpu/gguf_blocks.h"
#include "ops/matmul.h"

using namespace tern;
using namespace tern::bench;

int main(int argc, char** argv) {
  const bool cpu_time = has_flag(argc, argv, "--cpu-time");
  auto clock_s = [cpu_time] { return cpu_time ? thread_cpu_s() : now_s(); };
  const int reps = std::stoi(arg_value(argc, argv, "--reps", "5"));
  const int threads = std::stoi(arg_value(argc, argv, "--threads", "1"));
  const int64_t gemm_m = std::stoll(arg_value(argc, argv, "--gemm-m", "128"));
  std::string types = arg_value(argc, argv, "--types", "BF16,Q8_0,Q4_0,Q4_K,Q5_K,Q6_K,Q2_K,Q3_K");
  const int64_t k = 2048, n = 2048, copies = 16;
  std::vector<float> wf(size_t(n * k));
  std::mt19937 rng(1);
  std::normal_distribution<float> d(0.f, 1.f);
  for (auto& v : wf) v = d(rng);
  std::vector<float> x(size_t(gemm_m * k)), y(size_t(gemm_m * n));
  for (auto& v : x) v = d(rng);
  ThreadPool pool(threads);
  const std::string isa = arg_value(argc, argv, "--isa", "");
  ExecContext ctx(pool, isa.empty() ? CpuFeatures::detect() : CpuFeatures::detect().capped(isa));
  std::printf("cpu: %s, %d thread(s), k = n = %lld, best of %d\n", ctx.cpu().describe().c_str(), threads,
              (long long)k, reps);
  std::printf("%-6s %-18s %10s %8s %-18s %9s\n", "type", "gemv kernel", "gemv us", "GB/s", "gemm kernel", "GFLOP/s");
  size_t b = 0;
  while (b < types.size()) {
    const size_t e = std::min(types.find(',', b), types.size());
    const std::string name = types.substr(b, e - b);
    b = e + 1;
    const auto t = gguf_type_from_name(name);
    if (!t) continue;
    const size_t bytes = gguf_row_bytes(*t, k) * size_t(n);
    std::vector<uint8_t> one(bytes);
    for (int64_t r = 0; r < n; ++r) gguf_quantize_row(*t, wf.data() + r * k, one.data() + size_t(r) * gguf_row_bytes(*t, k), k);
    Buffer arena = alloc_buffer(bytes * copies);
    for (int64_t c = 0; c < copies; ++c) std::memcpy(arena.get() + size_t(c) * bytes, one.data(), bytes);
    WeightMatrix w;
    w.rows = n, w.cols = k;
    if (*t == GgufType::BF16 || *t == GgufType::F16 || *t == GgufType::F32) {
      w.dtype = *t == GgufType::BF16 ? DType::BF16 : *t == GgufType::F16 ? DType::F16 : DType::F32;
    } else {
      w.format = WeightFormat::Gguf, w.gguf_type = int(*t), w.quant_bytes = bytes;
    }
    double best_gemv = 1e30, best_gemm = 1e30;
    for (int r = 0; r < reps; ++r) {
      const double t0 = clock_s();
      for (int64_t c = 0; c < copies; ++c) {
        w.data = arena.get() + size_t(c) * bytes;
        matmul(ctx, x.data(), 1, w, y.data());
      }
      best_gemv = std::min(best_gemv, (clock_s() - t0) / double(copies));
      w.data = arena.get();
      const double t1 = clock_s();
      matmul(ctx, x.data(), gemm_m, w, y.data());
      best_gemm = std::min(best_gemm, clock_s() - t1);
    }
    std::printf("%-6s %-18s %10.1f %8.2f %-18s %9.1f\n", name.c_str(), matmul_kernel_name(ctx, 1, w), best_gemv * 1e6,
                double(bytes) / best_gemv / 1e9, matmul_kernel_name(ctx, gemm_m, w),
                2.0 * double(gemm_m * n * k) / best_gemm / 1e9);
  }
  return 0;
}
