// Dense matmul throughput on the Llama-3.2-1B shapes, bf16 weights.
//   bench_matmul [--threads N] [--reps 3] [--gemm-m 512] [--levels avx2,avx512,...] [--lm-head-gemm] [--gemv-only] [--json]
//   bench_matmul --gemm-ms 2,4,8,16,32,64,512 [--threads N] [--reps 3] [--levels ...] [--lm-head-gemm]
//   --panels: the weights as Bf16Panels (packed at load for --activations bf16; the arena's random bf16
//     read in that layout: same bytes), to compare the panel GEMV / GEMM with the dense ones.
//     GFLOP/s of every m on every shape, as % of the FMA peak (bench_fma.h) measured right before it.
//     With --cpu-time, 1-thread runs are timed by thread CPU time (both the GEMM and the peak), which
//     keeps kernel comparisons meaningful on a busy machine.
// GEMV (m = 1, decode): GB/s of weights streamed, and that as a fraction of the read bandwidth measured
// in the same run with the same threads. Weights come from a 1 GiB arena (> LLC) and every call uses
// the next copy, so they are never served from cache.
// GEMM (m = --gemm-m, prefill): GFLOP/s (2·m·n·k per call). The LM head is skipped for GEMM unless asked.
#include <random>
#include <vector>

#include "bench_common.h"
#include "bench_fma.h"
#include "core/dtype.h"
#include "ops/matmul.h"

using namespace tern;
using namespace tern::bench;

namespace {

// The bf16-dot levels measure their own GEMMs, which round x to bf16 (core/exec_context.h).
ActivationPrecision activations_for(const std::string& level) {
  return level == "avx512bf16" || level == "amx" ? ActivationPrecision::kBf16 : ActivationPrecision::kF32;
}

// The --gemm-ms table. Weights rotate through the arena as in the GEMV run, so each call reads them
// from DRAM the way a decode step does.
int run_gemm_sweep(int argc, char** argv, const std::vector<std::string>& levels, const std::vector<int>& thread_counts,
                   Buffer& arena, size_t arena_bytes, int reps, bool lm_head) {
  std::vector<int64_t> ms;
  for (const auto& v : split_commas(arg_value(argc, argv, "--gemm-ms", ""))) ms.push_back(std::stoll(v));
  const int64_t max_m = *std::max_element(ms.begin(), ms.end());
  std::vector<float> x(size_t(max_m) * 8192), y(size_t(max_m) * (lm_head ? 128256 : 8192));
  for (size_t i = 0; i < x.size(); ++i) x[i] = float(int(i % 17) - 8) / 8.f;
  std::printf("%-7s %-11s %5s %-22s %-18s %9s %9s %7s\n", "threads", "level", "m", "shape", "kernel", "GFLOP/s",
              "FMA peak", "of peak");
  for (int nt : thread_counts) {
    ThreadPool pool(nt);
    const bool cpu_time = nt == 1 && has_flag(argc, argv, "--cpu-time");
    for (const auto& level : levels) {
      ExecContext ctx(pool, CpuFeatures::detect().capped(level), activations_for(level));
      for (int64_t m : ms) {
        for (const MatmulShape& s : kLlama1bShapes) {
          if (s.n > 100000 && !lm_head) continue;
          const size_t bytes = size_t(s.n * s.k) * 2, stride = (bytes + 4095) / 4096 * 4096;
          const size_t copies = std::max<size_t>(1, arena_bytes / stride);
          WeightMatrix w{arena.get(), DType::BF16, s.n, s.k};
          if (has_flag(argc, argv, "--panels")) w.format = WeightFormat::Bf16Panels, w.quant_bytes = bytes;
          const double peak = fma_peak_gflops(pool, 1 << 19, 3, cpu_time);
          // Enough calls per timing for >= ~50 ms of work at 100 GFLOP/s.
          const double flop = 2.0 * double(m) * double(s.n) * double(s.k);
          const int calls = int(std::max(1.0, 5e9 / flop));
          double best = 1e30;
          size_t next = 0;
          for (int r = 0; r < reps; ++r) {
            const double t0 = now_s(), c0 = thread_cpu_s();
            for (int c = 0; c < calls; ++c) {
              w.data = arena.get() + (next++ % copies) * stride;
              matmul(ctx, x.data(), m, w, y.data());
            }
            best = std::min(best, (cpu_time ? thread_cpu_s() - c0 : now_s() - t0) / calls);
          }
          const double gflops = flop / best / 1e9;
          std::printf("%-7d %-11s %5lld %-22s %-18s %9.1f %9.1f %6.1f%%\n", nt, level.c_str(), (long long)m, s.name,
                      matmul_kernel_name(ctx, m, w), gflops, peak, 100.0 * gflops / peak);
          std::fflush(stdout);
        }
      }
    }
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  const int reps = std::stoi(arg_value(argc, argv, "--reps", "3"));
  const int64_t gemm_m = std::stoll(arg_value(argc, argv, "--gemm-m", "512"));
  const bool json = has_flag(argc, argv, "--json"), lm_head_gemm = has_flag(argc, argv, "--lm-head-gemm");
  const bool gemv_only = has_flag(argc, argv, "--gemv-only");
  const bool panels = has_flag(argc, argv, "--panels");
  std::vector<int> thread_counts = {1, 2};
  if (const std::string t = arg_value(argc, argv, "--threads", ""); !t.empty()) thread_counts = {std::stoi(t)};
  const CpuFeatures host = CpuFeatures::detect();
  std::vector<std::string> levels;
  for (const auto& l : split_commas(arg_value(argc, argv, "--levels", "avx2,avx512,avx512bf16,amx"))) {
    const CpuFeatures c = host.capped(l);
    const bool runnable = l == "scalar" || (l == "avx2" && c.avx2) || (l == "avx512" && c.avx512) ||
                          (l == "avx512bf16" && c.avx512_bf16) || (l == "amx" && c.amx_bf16);
    if (runnable) levels.push_back(l);
  }

  // The weight arena: random bf16 in [-1, 1), tiled from a 1 MiB random block.
  const size_t arena_bytes = size_t(1) << 30;
  Buffer arena = alloc_buffer(arena_bytes);
  {
    std::mt19937 rng(1);
    std::uniform_real_distribution<float> u(-1.f, 1.f);
    std::vector<uint16_t> block(size_t(1) << 19);
    for (auto& h : block) h = f32_to_bf16(u(rng));
    for (size_t off = 0; off < arena_bytes; off += block.size() * 2)
      std::memcpy(arena.get() + off, block.data(), std::min(block.size() * 2, arena_bytes - off));
  }
  if (!arg_value(argc, argv, "--gemm-ms", "").empty())
    return run_gemm_sweep(argc, argv, levels, thread_counts, arena, arena_bytes, reps, lm_head_gemm);
  std::vector<float> x(size_t(gemm_m) * 8192);
  std::vector<float> y(std::max<size_t>(128256, size_t(gemm_m) * (lm_head_gemm ? 128256 : 8192)));
  for (size_t i = 0; i < x.size(); ++i) x[i] = float(int(i % 17) - 8) / 8.f;

  if (!json)
    std::printf("cpu: %s; GEMV m=1 over a 1 GiB arena; GEMM m=%lld; best of %d\n", host.describe().c_str(),
                (long long)gemm_m, reps);
  if (json) std::printf("[");
  bool first_json = true;
  for (int nt : thread_counts) {
    ThreadPool pool(nt);
    if (!json)
      std::printf("\nthreads %d\n%-11s %-22s %-18s %10s %8s %8s %7s %18s %9s\n", nt, "level", "shape", "gemv kernel",
                  "gemv us", "GB/s", "bw GB/s", "of bw", "gemm kernel", "GFLOP/s");
    for (const auto& level : levels) {
      ExecContext ctx(pool, host.capped(level), activations_for(level));
      for (const MatmulShape& s : kLlama1bShapes) {
        const size_t bytes = size_t(s.n * s.k) * 2;
        const size_t stride = (bytes + 4095) / 4096 * 4096;
        const size_t copies = std::max<size_t>(1, arena_bytes / stride);
        WeightMatrix w{arena.get(), DType::BF16, s.n, s.k};
        if (panels) {  // every shape has rows a multiple of 32: the same bytes, read as Bf16Panels
          w.format = WeightFormat::Bf16Panels;
          w.quant_bytes = bytes;
        }
        // The machine may be shared: measure the ceiling right next to the GEMV it is compared with.
        const double bw = best_read_bandwidth_gbs(pool, level == "avx2" ? host.capped("avx2") : host, arena.get(), arena_bytes / 2, 3);
        // GEMV: enough calls per batch to stream >= 2 GB, best batch average.
        const int calls = int(std::max<size_t>(8, size_t(2e9) / bytes));
        size_t next = 0;
        double gemv_s = 1e30;
        // --cpu-time with 1 thread: the thread's CPU time (a memory stall counts, a preemption does not).
        const bool gemv_cpu_time = nt == 1 && has_flag(argc, argv, "--cpu-time");
        for (int r = 0; r < reps; ++r) {
          const double t0 = gemv_cpu_time ? thread_cpu_s() : now_s();
          for (int c = 0; c < calls; ++c) {
            w.data = arena.get() + (next++ % copies) * stride;
            matmul(ctx, x.data(), 1, w, y.data());
          }
          gemv_s = std::min(gemv_s, ((gemv_cpu_time ? thread_cpu_s() : now_s()) - t0) / calls);
        }
        const double gbs = double(bytes) / gemv_s / 1e9;
        const char* gemv_name = matmul_kernel_name(ctx, 1, w);
        double gflops = 0;
        const char* gemm_name = matmul_kernel_name(ctx, gemm_m, w);
        if (!gemv_only && (s.n < 100000 || lm_head_gemm)) {
          double gemm_s = 1e30;
          for (int r = 0; r < reps; ++r) {
            w.data = arena.get() + (next++ % copies) * stride;
            const double t0 = now_s();
            matmul(ctx, x.data(), gemm_m, w, y.data());
            gemm_s = std::min(gemm_s, now_s() - t0);
          }
          gflops = 2.0 * double(gemm_m) * double(s.n) * double(s.k) / gemm_s / 1e9;
        }
        if (json) {
          std::printf("%s{\"threads\":%d,\"level\":\"%s\",\"shape\":\"%s\",\"read_bw_gbs\":%.2f,\"gemv_kernel\":\"%s\","
                      "\"gemv_us\":%.1f,\"gemv_gbs\":%.2f,\"gemv_frac_bw\":%.3f,\"gemm_kernel\":\"%s\",\"gemm_m\":%lld,"
                      "\"gemm_gflops\":%.2f}",
                      first_json ? "" : ",", nt, level.c_str(), s.name, bw, gemv_name, gemv_s * 1e6, gbs, gbs / bw,
                      gemm_name, (long long)gemm_m, gflops);
          first_json = false;
        } else {
          std::printf("%-11s %-22s %-18s %10.1f %8.2f %8.2f %6.1f%% %18s %9s\n", level.c_str(), s.name, gemv_name,
                      gemv_s * 1e6, gbs, bw, 100.0 * gbs / bw, gemm_name,
                      gflops > 0 ? std::to_string(gflops).substr(0, 6).c_str() : "-");
        }
        std::fflush(stdout);
      }
    }
  }
  if (json) std::printf("]\n");
  return 0;
}
