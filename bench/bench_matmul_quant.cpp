// Quantized matmul throughput on the Llama-3.2-1B shapes: int8 (W8A16, W8A8), int4 g128 and FP8
// against bf16, through the same ops::matmul front door the model uses.
//   bench_matmul_quant [--threads N] [--reps 3] [--gemv-m 1] [--gemm-m 512] [--formats bf16,w8a16,w8a8,int4,fp8] [--hot] [--json]
//                      [--gemm-only]   (skip the GEMV and its bandwidth ceiling: GEMM GFLOP/s alone, much faster)
// --isa avx2|avx512|...: cap the kernels to that level (CpuFeatures::capped), to time a fallback;
// --no-avxvnni also drops AVX-VNNI (which the avx2 level keeps).
// (format w8a16f: W8A16's GEMV on the f32-x kernel, called directly, next to w8a16's int16-x one; AVX2 hosts)
// (formats w8a16p / int4r: the GEMMs m > 8 took before the integer ones, called directly; use --threads 1)
// GEMV (m = --gemv-m, default 1: decode; up to 8 = a small decode batch): GB/s of weight bytes streamed (codes + scales + zero points) per call; every
// call uses the next of several copies of the codes spread over >= 512 MiB, so they come from DRAM.
// GEMM (m = --gemm-m, prefill): GFLOP/s (2·m·n·k). The LM head is GEMV only.
// "% bw": GEMV GB/s as a share of the read bandwidth ceiling (best_read_bandwidth_gbs over 512 MiB)
// measured right before each row, so the ratio survives a loaded machine.
// --cpu-time (with --threads 1): time by the thread's CPU clock, not the wall clock, so a loaded machine
// (other processes taking turns on the cores) does not inflate the figures; the kernel runs on the calling thread.
#include <algorithm>
#include <random>
#include <vector>

#include "bench_common.h"
#include "core/dtype.h"
#include "core/fp8.h"
#include "kernels/cpu/matmul_kernels.h"
#include "kernels/cpu/quant_kernels.h"
#include "kernels/cpu/read_bandwidth.h"
#include "ops/matmul.h"

using namespace tern;
using namespace tern::bench;

namespace {


// Random weights in a format: `copies` copies of the codes, shared scales / zero points.
struct Weights {
  Buffer codes;
  size_t stride = 0, copies = 1, code_bytes = 0;
  std::vector<float> scales, zeros;
  WeightMatrix w;
};

Weights make(const std::string& fmt, const MatmulShape& s, bool hot) {
  Weights r;
  const int64_t n = s.n, k = s.k;
  r.w.rows = n, r.w.cols = k;
  if (fmt == "bf16") r.w.dtype = DType::BF16, r.code_bytes = size_t(n * k) * 2;
  else if (fmt == "int4" || fmt == "int4r") r.code_bytes = size_t(n * k) / 2;
  else r.code_bytes = size_t(n * k);  // int8 / fp8
  r.stride = (r.code_bytes + 4095) / 4096 * 4096;
  r.copies = hot ? 1 : std::max<size_t>(2, (size_t(512) << 20) / r.stride);
  r.codes = alloc_buffer(r.stride * r.copies);
  std::mt19937 rng(7);
  std::vector<uint8_t> block(size_t(1) << 20);
  for (auto& b : block) {
    b = uint8_t(rng());
    if (fmt == "fp8" && (b & 0x7f) == 0x7f) b = 0x30;          // no NaN codes
    if (fmt == "bf16" && (b & 0x7f) > 0x40) b &= 0x3f;          // keep bf16 values finite and small
  }
  for (size_t off = 0; off < r.stride * r.copies; off += block.size())
    std::memcpy(r.codes.get() + off, block.data(), std::min(block.size(), r.stride * r.copies - off));
  r.w.data = r.codes.get();
  if (fmt == "bf16") return r;
  const bool int4 = fmt == "int4" || fmt == "int4r";
  const int64_t groups = int4 ? k / 128 : 1;
  r.scales.assign(size_t(n * groups), 0.01f);
  r.w.scales = r.scales.data();
  if (int4) {
    r.w.format = WeightFormat::Int4Group, r.w.group = 128;
    r.zeros.assign(size_t(n * groups), 8.0f);
    r.w.zeros = r.zeros.data();  // asymmetric: the heavier path
  } else if (fmt == "fp8") {
    r.w.format = WeightFormat::Fp8E4M3;
  } else {
    r.w.format = WeightFormat::Int8Channel, r.w.int8_activations = fmt == "w8a8";  // w8a16 / w8a16f
  }
  r.w.quant_bytes = r.code_bytes + (r.scales.size() + r.zeros.size()) * sizeof(float);
  return r;
}


// The W8A16 decode kernel with f32 x (vpmovsxbd + vcvtdq2ps + FMA; the front door's choice before
// issue 20), called directly with the same row split as the front door: y[:, rows of thread t].
void f32x_gemv(ThreadPool& pool, const float* x, int64_t m, const WeightMatrix& w, float* y) {
  cpu::QuantActs a;
  a.x = x, a.m = m;
  pool.run([&](int t, int count) {
    const int64_t per = (w.rows / count + 15) / 16 * 16, b = std::min<int64_t>(w.rows, t * per),
                  e = t + 1 == count ? w.rows : std::min<int64_t>(w.rows, b + per);
    if (b < e) cpu::quant_gemv_w8a16_avx2(a, w, y, nullptr, 0, m, b, e);
  });
}

// The GEMMs the front door took at m > 8 before the integer ones (quant_gemm_*.cpp), called directly on
// one thread (--threads 1), for before/after figures in one binary: "w8a16p" widens 32 weight rows at a
// time to f32 and runs the dense AVX2 GEMM on them (f32 x); "int4r" is the per-row VNNI kernel
// (quant_int4_avx512vnni: one weight row against 4 rows of x, a horizontal sum per output), or without
// VNNI (--isa avx2) the same f32 panel as w8a16p.
void old_gemm(ExecContext& ctx, const std::string& fmt, const float* x, int64_t m, const WeightMatrix& w, float* y) {
  const int64_t n = w.rows, k = w.cols;
  if (fmt == "int4r" && ctx.cpu().avx512_vnni) {  // without VNNI int4 took the f32 panel below
    std::vector<char> scratch(cpu::quant_acts_bytes(w, m) + 64);
    const cpu::QuantActs a = cpu::quant_acts_prepare_avx2(w, x, m, scratch.data());
    cpu::quant_int4_avx512vnni(a, w, y, nullptr, 0, m, 0, n);
    return;
  }
  constexpr int64_t kRows = 32;
  std::vector<float> panel(size_t(kRows * k)), ypanel(size_t(m * kRows));
  for (int64_t p0 = 0; p0 < n; p0 += kRows) {
    const int64_t rows = std::min(kRows, n - p0);
    cpu::quant_widen_rows_avx2(w, p0, rows, panel.data());
    cpu::MatmulArgs args{x, m, WeightMatrix{panel.data(), DType::F32, rows, k}, ypanel.data(), nullptr};
    cpu::gemm_avx2(ctx, 0, args, 0, m, 0, rows);
    for (int64_t i = 0; i < m; ++i)
      for (int64_t r = 0; r < rows; ++r) y[i * n + p0 + r] = ypanel[size_t(i * rows + r)];
  }
}

}  // namespace

int main(int argc, char** argv) {
  const bool cpu_time = has_flag(argc, argv, "--cpu-time");
  auto clock_s = [cpu_time] { return cpu_time ? thread_cpu_s() : now_s(); };
  const int reps = std::stoi(arg_value(argc, argv, "--reps", "3"));
  const int64_t gemm_m = std::stoll(arg_value(argc, argv, "--gemm-m", "512"));
  const int64_t gemv_m = std::clamp<int64_t>(std::stoll(arg_value(argc, argv, "--gemv-m", "1")), 1, 8);
  const bool json = has_flag(argc, argv, "--json");
  // --hot: one copy of the codes, re-read every call (cache-resident for the small shapes): the
  // kernel's compute ceiling, to tell a compute-bound GEMV from a memory-bound one.
  const bool hot = has_flag(argc, argv, "--hot");
  const bool gemm_only = has_flag(argc, argv, "--gemm-only");
  std::vector<int> thread_counts = {1, 2};
  if (const std::string t = arg_value(argc, argv, "--threads", ""); !t.empty()) thread_counts = {std::stoi(t)};
  const auto formats = split_commas(arg_value(argc, argv, "--formats", "bf16,w8a16,w8a8,int4,fp8"));
  const std::string isa = arg_value(argc, argv, "--isa", "");
  CpuFeatures host = isa.empty() ? CpuFeatures::detect() : CpuFeatures::detect().capped(isa);
  if (has_flag(argc, argv, "--no-avxvnni")) host.avx_vnni = false;  // plain AVX2 (Zen 1 / Zen 2's set)
  std::vector<float> x(size_t(std::max(gemm_m, gemv_m)) * 8192), y(std::max<size_t>(128256 * 8, size_t(gemm_m) * 8192));
  for (size_t i = 0; i < x.size(); ++i) x[i] = float(int(i % 17) - 8) / 8.f;
  if (!json)
    std::printf("cpu: %s; GEMV m=%lld from %s; GEMM m=%lld; best of %d\n", host.describe().c_str(), (long long)gemv_m,
                hot ? "cache (--hot)" : "DRAM", (long long)gemm_m, reps);
  if (json) std::printf("[");
  bool first = true;
  for (int nt : thread_counts) {
    ThreadPool pool(nt);

    const size_t bwbytes = gemm_only ? 4096 : size_t(512) << 20;
    Buffer bwbuf = alloc_buffer(bwbytes);
    std::memset(bwbuf.get(), 1, bwbytes);
    if (!json)
      std::printf("\nthreads %d\n%-7s %-22s %-17s %10s %8s %8s %6s %17s %9s\n", nt, "format", "shape", "gemv kernel",
                  "gemv us", "GB/s", "ceil", "% bw", "gemm kernel", "GFLOP/s");
    for (const auto& fmt : formats) {
      ExecContext ctx(pool, host);
      for (const MatmulShape& s : kLlama1bShapes) {
        if (gemm_only && s.n >= 100000) continue;  // the LM head is GEMV only
        Weights wt = make(fmt, s, hot || gemm_only);
        WeightMatrix w = wt.w;
        const size_t bytes = w.bytes();
        const int calls = int(std::max<size_t>(8, size_t(1e9) / bytes));
        size_t next = 0;
        const double ceiling = gemm_only ? 0 : best_read_bandwidth_gbs(pool, host, bwbuf.get(), bwbytes, 2);
        double gemv_s = gemm_only ? 0 : 1e30;
        for (int r = 0; r < (gemm_only ? 0 : reps); ++r) {
          const double t0 = clock_s();
          for (int c = 0; c < calls; ++c) {
            w.data = wt.codes.get() + (next++ % wt.copies) * wt.stride;
            if (fmt == "w8a16f") {
              f32x_gemv(pool, x.data(), gemv_m, w, y.data());
            } else {
              matmul(ctx, x.data(), gemv_m, w, y.data());
            }
          }
          gemv_s = std::min(gemv_s, (clock_s() - t0) / calls);
        }
        const double gbs = gemm_only ? 0 : double(bytes) / gemv_s / 1e9;
        const double pct = gemm_only ? 0 : 100.0 * gbs / ceiling;
        double gflops = 0;
        if (s.n < 100000) {
          double gemm_s = 1e30;
          for (int r = 0; r < reps; ++r) {
            const double t0 = clock_s();
            if (fmt == "w8a16p" || fmt == "int4r") {
              old_gemm(ctx, fmt, x.data(), gemm_m, w, y.data());
            } else {
              matmul(ctx, x.data(), gemm_m, w, y.data());
            }
            gemm_s = std::min(gemm_s, clock_s() - t0);
          }
          gflops = 2.0 * double(gemm_m) * double(s.n) * double(s.k) / gemm_s / 1e9;
        }
        const char* gemv_name = fmt == "w8a16f" ? "w8a16_f32x_avx2" : matmul_kernel_name(ctx, gemv_m, w);
        const char* gemm_name = fmt == "w8a16p" ? "w8a16_panel_f32 (old)"
                                : fmt == "int4r" ? "int4_rows_vnni (old)"
                                                 : matmul_kernel_name(ctx, gemm_m, w);
        if (json) {
          std::printf("%s{\"threads\":%d,\"format\":\"%s\",\"shape\":\"%s\",\"gemv_kernel\":\"%s\",\"gemv_us\":%.1f,"
                      "\"gemv_gbs\":%.2f,\"read_ceiling_gbs\":%.2f,\"gemm_kernel\":\"%s\",\"gemm_m\":%lld,\"gemm_gflops\":%.2f}",
                      first ? "" : ",", nt, fmt.c_str(), s.name, gemv_name, gemv_s * 1e6, gbs, ceiling, gemm_name,
                      (long long)gemm_m, gflops);
          first = false;
        } else {
          std::printf("%-7s %-22s %-17s %10.1f %8.2f %8.2f %5.1f%% %17s %9.1f\n", fmt.c_str(), s.name, gemv_name,
                      gemv_s * 1e6, gbs, ceiling, pct, gemm_name, gflops);
        }
        std::fflush(stdout);
      }
    }
  }
  if (json) std::printf("]\n");
  return 0;
}
