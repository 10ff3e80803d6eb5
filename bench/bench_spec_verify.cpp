// What verifying speculative drafts costs (docs/speculative.md, the batch-size back-off): B decoding
// sequences with a context of P cached tokens each run one step of 1 + k tokens per sequence (k
// drafts, k + 1 logits rows each, as the engine verifies) over the CpuModelRunner; the step time is
// compared with the plain decode step (k = 0) at the same B. While the ratio stays near 1 the extra
// rows are nearly free (decode reads the weights once per step whatever the rows); where it grows
// towards 1 + k, drafts cost as much as they can save.
// Usage: bench_spec_verify MODEL_DIR [--batches 1,2,4,8,16,32] [--drafts 0,2,4] [--context 512]
//                          [--steps 16] [--threads 2] [--cpu-time] [--json]
#include <fmt/format.h>

#include <nlohmann/json.hpp>
#include <ctime>
#include <random>
#include <string>
#include <vector>

#include "bench_common.h"
#include "engine/cpu_model_runner.h"

using namespace tern;

namespace {

double process_cpu_s() {
  timespec ts{};
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return double(ts.tv_sec) + 1e-9 * double(ts.tv_nsec);
}

std::vector<int> int_list(const std::string& s) {
  std::vector<int> v;
  for (const std::string& t : bench::split_commas(s)) v.push_back(std::stoi(t));
  return v;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    fmt::print(stderr, "usage: bench_spec_verify MODEL_DIR [--batches 1,2,4,8,16,32] [--drafts 0,2,4] [--context 512] "
                       "[--steps 16] [--threads 2] [--json]\n");
    return 2;
  }
  const std::vector<int> batches = int_list(bench::arg_value(argc, argv, "--batches", "1,2,4,8,16,32"));
  const std::vector<int> drafts = int_list(bench::arg_value(argc, argv, "--drafts", "0,2,4"));
  const int64_t context = std::stoll(bench::arg_value(argc, argv, "--context", "512"));
  const int steps = std::stoi(bench::arg_value(argc, argv, "--steps", "16"));
  const int threads = std::stoi(bench::arg_value(argc, argv, "--threads", "2"));
  const bool json = bench::has_flag(argc, argv, "--json");
  // --cpu-time (1 thread only): the process's CPU time instead of the wall clock, for a shared machine.
  const bool cpu_time = threads == 1 && bench::has_flag(argc, argv, "--cpu-time");
  auto clock = [&] { return cpu_time ? process_cpu_s() : bench::now_s(); };
  constexpr int kBlock = 16;
  auto loaded = Model::load(argv[1]);
  if (!loaded.is_ok()) {
    fmt::print(stderr, "{}\n", loaded.status().message());
    return 1;
  }
  const Model& m = **loaded;
  const ModelConfig& cfg = m.config();
  ThreadPool pool(threads);
  ExecContext ctx(pool, CpuFeatures::detect());
  nlohmann::ordered_json out = nlohmann::ordered_json::array();
  int max_k = 0;
  for (int k : drafts) max_k = std::max(max_k, k);
  for (int B : batches) {
    const int64_t per_seq = (context + max_k + 2 + kBlock) / kBlock + 1;
    CpuModelRunner runner(m, ctx, std::max<int64_t>(512, int64_t(B) * (max_k + 1)), int64_t(B) * (max_k + 1));
    if (Status s = runner.allocate_kv({per_seq * B, kBlock, KvDType::BF16}); !s.is_ok()) {
      fmt::print(stderr, "{}\n", s.message());
      return 1;
    }
    std::vector<std::vector<int32_t>> tables(static_cast<size_t>(B));
    const int64_t row = int64_t(cfg.n_kv_heads) * cfg.head_dim;
    std::mt19937 rng(1);
    std::normal_distribution<float> nd(0.f, 1.f);
    std::vector<float> kk(size_t(context * row)), vv(kk.size());
    for (auto& x : kk) x = nd(rng);
    for (auto& x : vv) x = nd(rng);
    for (int s = 0; s < B; ++s) {
      for (int64_t b = 0; b < per_seq; ++b) tables[size_t(s)].push_back(int32_t(b * B + s));
      for (int l = 0; l < cfg.n_layers; ++l)
        runner.kv()->write(ctx.cpu(), l, tables[size_t(s)].data(), 0, context, kk.data(), vv.data());
    }
    std::vector<float> logits(size_t(B) * size_t(max_k + 1) * size_t(cfg.vocab_size));
    double base_ms = 0;
    for (int k : drafts) {
      StepBatch batch;
      // The same positions every step: a verification overwrites the slots of rejected drafts.
      auto run_step = [&](int it) {
        batch.seqs.clear();
        batch.token_ids.clear();
        for (int s = 0; s < B; ++s) {
          for (int i = 0; i <= k; ++i) batch.token_ids.push_back(int32_t((it * 31 + s * 7 + i) % std::min<int64_t>(cfg.vocab_size, 1000)));
          batch.seqs.push_back({context, k + 1, tables[size_t(s)].data(), per_seq, true, k + 1});
        }
        if (Status st = runner.forward(batch, logits.data()); !st.is_ok()) {
          fmt::print(stderr, "{}\n", st.message());
          std::exit(1);
        }
      };
      run_step(0);  // warm-up
      // Best of 3 runs of `steps` steps: the machine is shared, the minimum is the cost.
      double best = 1e30;
      for (int rep = 0; rep < 3; ++rep) {
        const double t0 = clock();
        for (int i = 1; i <= steps; ++i) run_step(i);
        best = std::min(best, (clock() - t0) / steps);
      }
      const double ms = 1e3 * best;
      if (k == 0) base_ms = ms;
      const double ratio = base_ms > 0 ? ms / base_ms : 0;
      if (json) {
        out.push_back({{"batch", B}, {"drafts", k}, {"rows", B * (k + 1)}, {"context", context}, {"threads", threads},
                       {"step_ms", ms}, {"vs_plain_decode", ratio}});
      } else {
        fmt::print("batch {:3d}  drafts {}  rows {:4d}: step {:7.2f} ms  ({:.2f}x the plain decode step)\n", B, k,
                   B * (k + 1), ms, ratio);
        std::fflush(stdout);
      }
    }
  }
  if (json) fmt::print("{}\n", out.dump());
  return 0;
}
