// Attention timings for a Llama-3.2-1B layer shape (32 query heads, 8 kv heads, head_dim 64):
//   decode  (n_q = 1) at context 128 / 512 / 2048 / 8192: GB/s of K+V read
//   prefill (512 tokens from position 0, causal): GFLOP/s (4·heads·D flops per visible q·k pair)
// with 1 and 2 threads. Decode rotates over enough per-layer KV copies (~256 MiB in all) that the
// cache is read from memory, as it is in a real forward pass that walks all layers.
// Usage: bench_attention [--isa scalar|avx2|avx512] [--hot]   (--hot: one KV copy, cache-resident)
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <random>
#include <string>
#include <vector>

#include "bench_common.h"
#include "core/cpu_features.h"
#include "core/thread_pool.h"
#include "ops/attention.h"
#include "core/exec_context.h"

using namespace tern;
using bench::thread_cpu_s;

namespace {

constexpr int kHeads = 32, kKvHeads = 8, kDim = 64;

std::vector<float> random_vec(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> d(-1.f, 1.f);
  std::vector<float> v(n);
  for (auto& x : v) x = d(rng);
  return v;
}

double now_s() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

struct Timing {
  double wall = 0, cpu = 0;  // seconds per call (best run)
};

AttentionShape llama_shape() {
  AttentionShape s;
  s.n_heads = kHeads;
  s.n_kv_heads = kKvHeads;
  s.head_dim = kDim;
  s.scale = 1.f / std::sqrt(float(kDim));
  return s;
}

// Best of `reps` timings of fn, each repeated until it takes >= 20 ms (the minimum is the least
// disturbed by other processes on a shared machine).
template <typename F>
Timing time_per_call(F&& fn, int reps = 5) {
  fn();
  Timing best{1e30, 1e30};
  for (int r = 0; r < reps; ++r) {
    int n = 0;
    const double t0 = now_s(), c0 = thread_cpu_s();
    double t1 = t0;
    while (t1 - t0 < 0.02) {
      fn();
      ++n;
      t1 = now_s();
    }
    best.wall = std::min(best.wall, (t1 - t0) / n);
    best.cpu = std::min(best.cpu, (thread_cpu_s() - c0) / n);
  }
  return best;
}

void bench_decode(ExecContext& ctx, int64_t context, bool hot) {
  const size_t kv_floats = size_t(context) * kKvHeads * kDim;
  const int copies = hot ? 1 : int(std::clamp<int64_t>((int64_t(256) << 20) / int64_t(2 * kv_floats * 4), 1, 512));
  std::vector<std::vector<float>> ks, vs;
  for (int c = 0; c < copies; ++c) {
    ks.push_back(random_vec(kv_floats, 11u + c));
    vs.push_back(random_vec(kv_floats, 1011u + c));
  }
  const auto q = random_vec(size_t(kHeads) * kDim, 7);
  std::vector<float> out(size_t(kHeads) * kDim);
  const AttentionShape shape = llama_shape();
  int layer = 0;
  const Timing t = time_per_call([&] {
    attention(ctx, shape, q.data(), 1, context - 1, ks[layer].data(), vs[layer].data(), context, out.data());
    layer = (layer + 1) % copies;
  });
  const double bytes = 2.0 * double(kv_floats) * sizeof(float);
  std::printf("decode   ctx %5lld  threads %d  %9.1f us  %7.2f GB/s KV read", (long long)context, ctx.threads(),
              t.wall * 1e6, bytes / t.wall / 1e9);
  if (ctx.threads() == 1) std::printf("  [thread cpu time: %7.2f GB/s]", bytes / t.cpu / 1e9);
  std::printf("  (%d KV copies)\n", copies);
}

void bench_prefill(ExecContext& ctx, int64_t n) {
  const auto q = random_vec(size_t(n) * kHeads * kDim, 1);
  const auto k = random_vec(size_t(n) * kKvHeads * kDim, 2);
  const auto v = random_vec(size_t(n) * kKvHeads * kDim, 3);
  std::vector<float> out(q.size());
  const AttentionShape shape = llama_shape();
  const Timing t =
      time_per_call([&] { attention(ctx, shape, q.data(), n, 0, k.data(), v.data(), n, out.data()); }, 3);
  const double flops = 4.0 * kHeads * kDim * double(n) * double(n + 1) / 2;
  std::printf("prefill  n   %5lld  threads %d  %9.1f ms  %7.2f GFLOP/s", (long long)n, ctx.threads(), t.wall * 1e3,
              flops / t.wall / 1e9);
  if (ctx.threads() == 1) std::printf("  [thread cpu time: %7.2f GFLOP/s]", flops / t.cpu / 1e9);
  std::printf("\n");
}

}  // namespace

int main(int argc, char** argv) {
  std::string isa;
  bool hot = false;
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--isa") == 0 && i + 1 < argc) isa = argv[++i];
    if (std::strcmp(argv[i], "--hot") == 0) hot = true;
  }
  CpuFeatures cpu = CpuFeatures::detect();
  if (!isa.empty()) cpu = cpu.capped(isa);
  std::printf("attention bench: %d heads, %d kv heads, head_dim %d, cpu: %s\n", kHeads, kKvHeads, kDim,
              cpu.describe().c_str());
  for (int threads : {1, 2}) {
    ThreadPool pool(threads);
    ExecContext ctx(pool, cpu);
    for (int64_t context : {128, 512, 2048, 8192}) bench_decode(ctx, context, hot);
    bench_prefill(ctx, 512);
  }
  return 0;
}
