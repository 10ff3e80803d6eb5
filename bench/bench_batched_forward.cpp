// Aggregate decode throughput of the ragged batched forward (CpuModelRunner over a paged pool):
// B sequences, each with a context of P tokens already in the KV cache, decode one token per step
// in one StepBatch; tokens/s = B · steps / time. The context is written straight into the pool
// (random K/V rows) instead of being prefilled, so large B stay quick to set up while attention
// still reads P cached positions per sequence; weights and compute are those of a real step.
// Usage: bench_batched_forward MODEL_DIR [--batches 1,4,16,64] [--context 256] [--steps 8]
//                              [--kv-dtype bf16] [--block 16] [--threads N] [--json]
#include <fmt/format.h>

#include <nlohmann/json.hpp>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "bench_common.h"
#include "engine/cpu_model_runner.h"

using namespace tern;

int main(int argc, char** argv) {
  if (argc < 2) {
    fmt::print(stderr, "usage: bench_batched_forward MODEL_DIR [--batches 1,4,16,64] [--context 256] [--steps 8] "
                       "[--kv-dtype bf16] [--block 16] [--threads N] [--json]\n");
    return 2;
  }
  std::vector<int> batches;
  {
    std::stringstream ss(bench::arg_value(argc, argv, "--batches", "1,4,16,64"));
    for (std::string t; std::getline(ss, t, ',');) batches.push_back(std::stoi(t));
  }
  const int64_t context = std::stoll(bench::arg_value(argc, argv, "--context", "256"));
  const int steps = std::stoi(bench::arg_value(argc, argv, "--steps", "8"));
  const int block = std::stoi(bench::arg_value(argc, argv, "--block", "16"));
  const int threads = std::stoi(bench::arg_value(argc, argv, "--threads", "2"));
  const bool json = bench::has_flag(argc, argv, "--json");
  auto dt = parse_kv_dtype(bench::arg_value(argc, argv, "--kv-dtype", "bf16"));
  auto loaded = Model::load(argv[1]);
  if (!dt.is_ok() || !loaded.is_ok()) {
    fmt::print(stderr, "{}\n", dt.is_ok() ? loaded.status().message() : dt.status().message());
    return 1;
  }
  const Model& m = **loaded;
  const ModelConfig& cfg = m.config();
  ThreadPool pool(threads);
  ExecContext ctx(pool, CpuFeatures::detect());
  nlohmann::ordered_json out = nlohmann::ordered_json::array();
  for (int B : batches) {
    const int64_t per_seq = (context + steps + block) / block + 1;
    CpuModelRunner runner(m, ctx, std::max<int64_t>(512, B), B);
    if (Status s = runner.allocate_kv({per_seq * B, block, *dt}); !s.is_ok()) {
      fmt::print(stderr, "{}\n", s.message());
      return 1;
    }
    std::vector<std::vector<int32_t>> tables(static_cast<size_t>(B));
    const int64_t row = int64_t(cfg.n_kv_heads) * cfg.head_dim;
    std::mt19937 rng(1);
    std::normal_distribution<float> nd(0.f, 1.f);
    std::vector<float> k(size_t(context * row)), v(k.size());
    for (auto& x : k) x = nd(rng);
    for (auto& x : v) x = nd(rng);
    for (int s = 0; s < B; ++s) {
      for (int64_t b = 0; b < per_seq; ++b) tables[size_t(s)].push_back(int32_t(b * B + s));  // interleaved blocks
      for (int l = 0; l < cfg.n_layers; ++l) runner.kv()->write(ctx.cpu(), l, tables[size_t(s)].data(), 0, context, k.data(), v.data());
    }
    std::vector<float> logits(size_t(B) * size_t(cfg.vocab_size));
    StepBatch batch;
    auto run_step = [&](int64_t pos) {
      batch.seqs.clear();
      batch.token_ids.assign(size_t(B), 0);
      for (int s = 0; s < B; ++s) {
        batch.token_ids[size_t(s)] = int32_t((pos * 31 + s * 7) % std::min<int64_t>(cfg.vocab_size, 1000));
        batch.seqs.push_back({pos, 1, tables[size_t(s)].data(), per_seq, true});
      }
      if (Status st = runner.forward(batch, logits.data()); !st.is_ok()) {
        fmt::print(stderr, "{}\n", st.message());
        std::exit(1);
      }
    };
    run_step(context);  // warm-up (page faults, scratch growth)
    const double t0 = bench::now_s();
    for (int i = 1; i <= steps; ++i) run_step(context + i);
    const double dtm = bench::now_s() - t0;
    const double tps = double(B) * steps / dtm;
    if (json) {
      out.push_back({{"batch", B}, {"context", context}, {"kv_dtype", kv_dtype_name(*dt)}, {"threads", threads},
                     {"step_ms", 1e3 * dtm / steps}, {"decode_tokens_per_s", tps}});
    } else {
      fmt::print("batch {:3d}  context {}  kv {}  threads {}: step {:8.1f} ms, aggregate decode {:8.1f} tok/s\n", B,
                 context, kv_dtype_name(*dt), threads, 1e3 * dtm / steps, tps);
      std::fflush(stdout);
    }
  }
  if (json) fmt::print("{}\n", out.dump());
  return 0;
}
