// Decode attention over the paged KV pool, as the engine runs it: S sequences in flight, one query
// token each at context C, every layer's K/V in one pool of 16-token blocks (shuffled block tables,
// the engine's layout), layers rotated per call so the KV comes from memory as it does in a forward
// pass. Per layer-step: time, KV bytes read (data + row scales), GB/s, and the share of the read
// bandwidth measured in the same run (kernels/cpu/read_bandwidth).
// Usage: bench_paged_attention [--isa scalar|avx2|avx512] [--threads 1,2] [--kv f32,bf16,int8,fp8]
//                              [--shape llama1b,docs28m] [--cases 1x1024,16x1024,16x4096]
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <ctime>
#include <numeric>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "bench_common.h"
#include "core/exec_context.h"
#include "kv/paged_kv_cache.h"
#include "ops/paged_attention.h"

using namespace tern;
using bench::cpu_model;
using bench::thread_cpu_s;

namespace {

struct Shape {
  const char* name;
  int layers, heads, kv_heads, head_dim;
};
constexpr Shape kShapes[] = {{"llama1b", 16, 32, 8, 64}, {"docs28m", 8, 8, 4, 64}};
constexpr int kBlock = 16;

std::vector<std::string> split(const std::string& s) {
  std::vector<std::string> out;
  std::stringstream in(s);
  std::string item;
  while (std::getline(in, item, ',')) out.push_back(item);
  return out;
}

std::string loadavg() {
  std::ifstream f("/proc/loadavg");
  std::string a, b, c;
  f >> a >> b >> c;
  return a + " " + b + " " + c;
}

// Random stored values of the pool's dtype, written straight into every block: a pool.write of
// gigabytes through the scalar fp8 encoder would take minutes. bf16: |x| < 2; int8: any code;
// fp8: any code but NaN (the encoder never writes 0x7f / 0xff). Row scales 1/64.
void fill_pool(PagedKvCache& pool, const CpuFeatures& cpu, const Shape& sh, KvDType dt) {
  std::mt19937 rng(5);
  const size_t vals = size_t(kBlock) * sh.kv_heads * sh.head_dim;
  for (int l = 0; l < sh.layers; ++l) {
    const cpu::PagedKvLayer L = pool.layer(l, cpu);
    for (int64_t b = 0; b < pool.num_blocks(); ++b)
      for (const uint8_t* part : {L.k, L.v}) {
        auto* base = const_cast<uint8_t*>(part) + size_t(b) * L.block_stride;
        for (size_t i = 0; i < vals; ++i) {
          const uint32_t r = rng();
          switch (dt) {
            case KvDType::F32: {
              const float x = float(int(r % 4001) - 2000) / 1000.f;
              std::memcpy(base + 4 * i, &x, 4);
              break;
            }
            case KvDType::BF16: {
              const float x = float(int(r % 4001) - 2000) / 1000.f;
              uint32_t bits;
              std::memcpy(&bits, &x, 4);
              const uint16_t h = uint16_t(bits >> 16);
              std::memcpy(base + 2 * i, &h, 2);
              break;
            }
            case KvDType::INT8: base[i] = uint8_t(r); break;
            case KvDType::FP8: base[i] = (r & 0x7f) == 0x7f ? uint8_t(r & 0x80) : uint8_t(r); break;
          }
        }
        if (L.codec.scaled)
          for (size_t i = 0; i < size_t(kBlock) * sh.kv_heads; ++i) {
            const float s = 1.f / 64.f;
            std::memcpy(base + L.scale_offset + 4 * i, &s, 4);
          }
      }
  }
}

void run_case(ThreadPool& tp, const CpuFeatures& cpu, const Shape& sh, KvDType dt, int n_seqs, int64_t ctx_len,
              double read_gbs) {
  ModelConfig cfg;
  cfg.n_layers = sh.layers;
  cfg.n_heads = sh.heads;
  cfg.n_kv_heads = sh.kv_heads;
  cfg.head_dim = sh.head_dim;
  const int64_t per_seq = (ctx_len + kBlock - 1) / kBlock;
  PagedKvCache pool(cfg, kBlock, dt);
  if (!pool.allocate(per_seq * n_seqs).is_ok()) {
    std::printf("%-8s %-5s %2dx%-5lld  cannot allocate %.1f GiB\n", sh.name, kv_dtype_name(dt), n_seqs,
                (long long)ctx_len, double(PagedKvCache::block_bytes_for(cfg, kBlock, dt)) * per_seq * n_seqs / 1073741824.0);
    return;
  }
  fill_pool(pool, cpu, sh, dt);
  std::vector<int32_t> ids(size_t(per_seq * n_seqs));
  std::iota(ids.begin(), ids.end(), 0);
  std::shuffle(ids.begin(), ids.end(), std::mt19937(9));
  std::vector<PagedAttnSeq> seqs(static_cast<size_t>(n_seqs));
  for (int s = 0; s < n_seqs; ++s) seqs[size_t(s)] = {ctx_len - 1, 1, s, ids.data() + s * per_seq};
  std::vector<float> q(size_t(n_seqs) * sh.heads * sh.head_dim), out(q.size());
  std::mt19937 rng(3);
  std::uniform_real_distribution<float> u(-1.f, 1.f);
  for (auto& x : q) x = u(rng);

  AttentionShape shape;
  shape.n_heads = sh.heads;
  shape.n_kv_heads = sh.kv_heads;
  shape.head_dim = sh.head_dim;
  shape.scale = 1.f / std::sqrt(float(sh.head_dim));
  ExecContext ctx(tp, cpu);
  std::vector<cpu::PagedKvLayer> layers;
  for (int l = 0; l < sh.layers; ++l) layers.push_back(pool.layer(l, cpu));
  PagedAttentionWorkspace ws;
  int layer = 0;
  auto step = [&] {
    paged_attention(ctx, shape, layers[size_t(layer)], seqs.data(), n_seqs, q.data(), out.data(), ws);
    layer = (layer + 1) % sh.layers;
  };
  for (int i = 0; i < sh.layers; ++i) step();
  double best = 1e30, best_cpu = 1e30;
  for (int rep = 0; rep < 5; ++rep) {
    int n = 0;
    const double t0 = bench::now_s(), c0 = thread_cpu_s();
    double t1 = t0;
    while (t1 - t0 < 0.05 || n % sh.layers != 0) {
      step();
      ++n;
      t1 = bench::now_s();
    }
    best = std::min(best, (t1 - t0) / n);
    best_cpu = std::min(best_cpu, (thread_cpu_s() - c0) / n);
  }
  const size_t elem = layers[0].codec.elem_bytes;
  double bytes = 2.0 * double(n_seqs) * double(ctx_len) * sh.kv_heads * sh.head_dim * double(elem);
  if (layers[0].codec.scaled) bytes += 2.0 * double(n_seqs) * double(ctx_len) * sh.kv_heads * 4;
  const double gbs = bytes / best / 1e9;
  std::printf("%-8s %-5s %2dx%-5lld threads %d  %9.1f us/layer-step  %7.2f MB  %6.2f GB/s  %5.1f%% of read bw\n",
              sh.name, kv_dtype_name(dt), n_seqs, (long long)ctx_len, tp.size(), best * 1e6, bytes / 1e6, gbs,
              100 * gbs / read_gbs);
  // One thread runs the whole step on the calling thread: its CPU time is the kernel's cost even
  // while other processes share the cores (wall time then includes time spent descheduled).
  if (tp.size() == 1)
    std::printf("%*s[thread cpu time: %9.1f us/layer-step  %6.2f GB/s]\n", 34, "", best_cpu * 1e6,
                bytes / best_cpu / 1e9);
  std::fflush(stdout);
}

}  // namespace

int main(int argc, char** argv) {
  CpuFeatures cpu = CpuFeatures::detect();
  const std::string isa = bench::arg_value(argc, argv, "--isa", "");
  if (!isa.empty()) cpu = cpu.capped(isa);
  std::printf("bench_paged_attention  cpu: %s  flags: %s  load average: %s\n", cpu_model().c_str(),
              cpu.describe().c_str(), loadavg().c_str());
  for (const std::string& t : split(bench::arg_value(argc, argv, "--threads", "1,2"))) {
    ThreadPool tp(std::max(1, std::stoi(t)));
    const double read_gbs = measure_memory_bandwidth(tp, cpu, size_t(512) << 20, 3).read_gbs;
    std::printf("threads %d: read bandwidth %.2f GB/s\n", tp.size(), read_gbs);
    for (const std::string& sname : split(bench::arg_value(argc, argv, "--shape", "llama1b,docs28m")))
      for (const Shape& sh : kShapes) {
        if (sname != sh.name) continue;
        for (const std::string& kv : split(bench::arg_value(argc, argv, "--kv", "f32,bf16,int8,fp8"))) {
          auto dt = parse_kv_dtype(kv);
          if (!dt.is_ok()) {
            std::fprintf(stderr, "%s\n", dt.status().message().c_str());
            return 1;
          }
          for (const std::string& c : split(bench::arg_value(argc, argv, "--cases", "1x1024,16x1024,16x4096"))) {
            const size_t x = c.find('x');
            if (x == std::string::npos) {
              std::fprintf(stderr, "--cases: '%s' is not SEQSxCONTEXT\n", c.c_str());
              return 1;
            }
            run_case(tp, cpu, sh, *dt, std::stoi(c.substr(0, x)), std::stoll(c.substr(x + 1)), read_gbs);
          }
        }
      }
  }
  std::printf("load average at the end: %s\n", loadavg().c_str());
  return 0;
}
