// Mixture-of-experts decode figures (issue 15):
//   1. batch-1 decode (Decoder + SequenceKvCache, greedy, after a short prompt): tok/s, and the
//      weight bytes one token actually read — per layer attention q/k/v/o, and on MoE layers the
//      router, the distinct experts the MoE block ran (its counters: k per layer at batch 1) and
//      the shared expert (+ gate), on dense layers the mlp; plus the LM head — against the read
//      bandwidth measured in the same run (kernels/cpu/read_bandwidth.h).
//   2. C requests in flight through the serving engine core (CpuModelRunner over the paged pool,
//      EngineCore stepping synchronously, greedy, EOS ignored): the decode phase (from the step
//      where every request has its first token to the end) in tok/s, and the mean number of
//      distinct experts one MoE layer read per step, against C × k (one pass per token per expert).
// Usage: bench_moe MODEL_DIR [--threads N] [--prompt 32] [--decode 64] [--concurrency 16]
//        [--bandwidth-gbs X] [--split dynamic|static|alternate] [--profile] [--bracket S] [--json]
//   --split: how decode GEMV regions share their rows among the threads (core/exec_context.h);
//   --profile: where a batch-1 token's time goes (bench_decode_profile.h), one more line.
//   --bracket S: batch-1 decode again in S segments, the read bandwidth probed right before each segment
//     and after the last; each segment's bytes × tok/s is divided by the mean of its two neighbouring
//     probes. On a VM whose bandwidth moves 30–55 GB/s from one minute to the next, one probe before a
//     run says more about that moment than about the decode; bracketing compares like with like.
#include <algorithm>
#include <fmt/format.h>

#include <chrono>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <nlohmann/json.hpp>
#include <random>
#include <string>
#include <vector>

#include "bench_common.h"
#include "bench_decode_profile.h"
#include "engine/cpu_model_runner.h"
#include "engine/engine_core.h"
#include "kernels/cpu/read_bandwidth.h"
#include "model/blocks/moe.h"
#include "model/decoder.h"
#include "model/model.h"
#include "runtime/sampler.h"

using namespace tern;
using Clock = std::chrono::steady_clock;

namespace {

double since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

// Weight bytes of everything a token reads except the routed experts; and one routed expert's bytes.
struct TokenBytes {
  int64_t fixed = 0, expert = 0;
};

TokenBytes token_bytes(const Model& m) {
  TokenBytes b;
  const auto& w = m.weights();
  auto add = [&](const WeightMatrix& x) { b.fixed += int64_t(x.bytes()); };
  for (const auto& l : w.layers) {
    add(l.attn.q), add(l.attn.k), add(l.attn.v), add(l.attn.o);
    if (l.moe) {
      add(l.moe->router);
      if (l.moe->shared.present()) add(l.moe->shared.gate), add(l.moe->shared.up), add(l.moe->shared.down);
      if (l.moe->shared_gate.rows > 0) add(l.moe->shared_gate);
      const ExpertMlp& e = l.moe->experts.front();
      b.expert = int64_t(e.gate.bytes() + e.up.bytes() + e.down.bytes());
    } else {
      add(l.mlp.gate), add(l.mlp.up), add(l.mlp.down);
    }
  }
  add(w.lm_head);
  return b;
}

struct Batch1 {
  double tps = 0, median_tps = 0, bytes_per_token = 0, experts_per_token = 0;
  std::string profile;    // --profile: the breakdown line
  std::string alternate;  // --split alternate: static against dynamic tokens
};

Batch1 decode_batch1(const Model& m, ExecContext& ctx, int64_t prompt_len, int n_new, bool profile = false,
                    bench::SplitChoice split = {}, double bandwidth_gbs = 0) {
  Decoder dec(m);
  const auto prompt = bench::random_ids(prompt_len, m.config().vocab_size, 1);
  SequenceKvCache kv(m.config(), prompt_len + n_new);
  std::vector<float> hidden(size_t(m.config().hidden_size)), logits(size_t(m.config().vocab_size));
  (void)dec.forward(ctx, kv, prompt.data(), prompt_len, 1, hidden.data());
  dec.logits(ctx, hidden.data(), 1, logits.data());
  int32_t next = argmax(logits.data(), m.config().vocab_size);
  const MoeCounters before = dec.moe_block()->counters();
  const auto t0 = Clock::now();
  // Each token's time: the median is robust to the host's bursts of other load.
  bench::DecodeProfile prof(profile);
  for (int i = 0; i < n_new; ++i) {
    ctx.set_column_split(split.for_token(i));
    prof.token_begin(ctx.pool());
    (void)dec.forward(ctx, kv, &next, 1, 1, hidden.data());
    dec.logits(ctx, hidden.data(), 1, logits.data());
    next = argmax(logits.data(), m.config().vocab_size);
    prof.token_end(split.for_token(i));
  }
  ctx.set_column_split(split.split);
  Batch1 r;
  r.tps = n_new / since(t0);
  prof.detach(ctx.pool());
  r.median_tps = n_new > 0 ? 1.0 / prof.median_s() : 0;
  const TokenBytes tb0 = token_bytes(m);
  const double per_token = double(tb0.fixed) + double(dec.moe_block()->counters().expert_passes - before.expert_passes) /
                                                    std::max(1, n_new) * double(tb0.expert);
  if (profile) r.profile = prof.summary();
  if (split.alternate) r.alternate = prof.alternate_summary(per_token, bandwidth_gbs);
  const TokenBytes tb = token_bytes(m);
  r.experts_per_token = double(dec.moe_block()->counters().expert_passes - before.expert_passes) / n_new;
  r.bytes_per_token = double(tb.fixed) + r.experts_per_token * double(tb.expert);
  return r;
}

// --bracket: per segment, the fraction of the bandwidth probed around it (see the header comment).
struct Bracketed {
  std::vector<double> probes_gbs;  // S + 1 probes
  std::vector<double> fractions;   // S segments
  double median_fraction = 0;
};

Bracketed decode_bracketed(const Model& m, ExecContext& ctx, int64_t prompt_len, int n_new, int segments) {
  // A 1 GiB probe buffer (far past the last-level cache), touched once by the pool's threads.
  const size_t probe_bytes = size_t(1) << 30, align = size_t(2) << 20;
  std::unique_ptr<char, void (*)(void*)> buf(static_cast<char*>(std::aligned_alloc(align, probe_bytes)), std::free);
  ctx.pool().run([&](int t, int nt) {
    const size_t chunk = probe_bytes / size_t(nt);
    std::memset(buf.get() + chunk * size_t(t), 1, chunk);
  });
  auto probe = [&] { return best_read_bandwidth_gbs(ctx.pool(), ctx.cpu(), buf.get(), probe_bytes, 2); };
  Decoder dec(m);
  const auto prompt = bench::random_ids(prompt_len, m.config().vocab_size, 1);
  SequenceKvCache kv(m.config(), prompt_len + int64_t(n_new) * segments);
  std::vector<float> hidden(size_t(m.config().hidden_size)), logits(size_t(m.config().vocab_size));
  (void)dec.forward(ctx, kv, prompt.data(), prompt_len, 1, hidden.data());
  dec.logits(ctx, hidden.data(), 1, logits.data());
  int32_t next = argmax(logits.data(), m.config().vocab_size);
  const TokenBytes tb = token_bytes(m);
  Bracketed r;
  r.probes_gbs.push_back(probe());
  for (int s = 0; s < segments; ++s) {
    const int64_t passes0 = dec.moe_block()->counters().expert_passes;
    const auto t0 = Clock::now();
    for (int i = 0; i < n_new; ++i) {
      (void)dec.forward(ctx, kv, &next, 1, 1, hidden.data());
      dec.logits(ctx, hidden.data(), 1, logits.data());
      next = argmax(logits.data(), m.config().vocab_size);
    }
    const double tps = n_new / since(t0);
    const double experts = double(dec.moe_block()->counters().expert_passes - passes0) / n_new;
    const double bytes = double(tb.fixed) + experts * double(tb.expert);
    r.probes_gbs.push_back(probe());
    const double around = 0.5 * (r.probes_gbs[size_t(s)] + r.probes_gbs[size_t(s) + 1]);
    r.fractions.push_back(bytes * tps / (around * 1e9));
  }
  std::vector<double> sorted = r.fractions;
  std::sort(sorted.begin(), sorted.end());
  r.median_fraction = sorted.empty() ? 0 : sorted[sorted.size() / 2];
  return r;
}

struct Engine16 {
  double decode_tps = 0, distinct_per_layer_step = 0, pairs_per_layer_step = 0;
  int64_t decode_steps = 0;
};

Engine16 decode_engine(const Model& m, ExecContext& ctx, int c, int64_t prompt_len, int n_new) {
  CpuModelRunner runner(m, ctx, 512, c);
  EngineCoreConfig cfg;
  cfg.block_size = 16;
  cfg.num_blocks = int64_t(c) * ((prompt_len + n_new + 15) / 16 + 1);
  cfg.scheduler.max_step_tokens = 512;
  cfg.scheduler.max_running = c;
  if (Status s = runner.allocate_kv({cfg.num_blocks, cfg.block_size, KvDType::BF16}); !s.is_ok()) {
    fmt::print(stderr, "bench_moe: {}\n", s.message());
    std::exit(1);
  }
  auto core_or = EngineCore::create(runner, nullptr, cfg);
  if (!core_or.is_ok()) {
    fmt::print(stderr, "bench_moe: {}\n", core_or.status().message());
    std::exit(1);
  }
  EngineCore& core = **core_or;
  int have_first = 0;
  std::vector<bool> first(size_t(c), false);
  for (int i = 0; i < c; ++i) {
    EngineRequest r;
    r.prompt = bench::random_ids(prompt_len, m.config().vocab_size, uint64_t(100 + i));
    r.max_new_tokens = n_new;
    r.ignore_eos = true;
    r.sampling.temperature = 0;
    (void)core.add(RequestId(i + 1), std::move(r), [&, i](RequestId, const EngineOutput& out) {
      if (!out.tokens.empty() && !first[size_t(i)]) first[size_t(i)] = true, ++have_first;
    });
  }
  // Prefill (and the steps where some requests still wait for their first token) first.
  while (core.has_work() && have_first < c) core.step();
  MoeBlock* moe = runner.decoder().moe_block();
  const MoeCounters before = moe->counters();
  int64_t tokens = 0, steps = 0;
  const auto t0 = Clock::now();
  while (core.has_work()) {
    core.step();
    tokens += core.last_step_tokens();
    ++steps;
  }
  Engine16 r;
  r.decode_tps = double(tokens) / since(t0);
  r.decode_steps = steps;
  const MoeCounters& after = moe->counters();
  const double forwards = double(after.forwards - before.forwards);  // MoE layers × steps
  r.distinct_per_layer_step = double(after.expert_passes - before.expert_passes) / forwards;
  r.pairs_per_layer_step = double(after.routed_pairs - before.routed_pairs) / forwards;
  return r;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    fmt::print(stderr, "usage: bench_moe MODEL_DIR [--threads N] [--prompt 32] [--decode 64] [--concurrency 16] "
                       "[--bandwidth-gbs X] [--split dynamic|static|alternate] [--profile] [--bracket S] [--json]\n");
    return 2;
  }
  const std::string dir = argv[1];
  const int threads = std::stoi(bench::arg_value(argc, argv, "--threads", "2"));
  const int64_t prompt = std::stoll(bench::arg_value(argc, argv, "--prompt", "32"));
  const int n_new = std::stoi(bench::arg_value(argc, argv, "--decode", "64"));
  const int conc = std::stoi(bench::arg_value(argc, argv, "--concurrency", "16"));
  const double bw_override = std::stod(bench::arg_value(argc, argv, "--bandwidth-gbs", "0"));
  const bool json = bench::has_flag(argc, argv, "--json");
  const bool profile = bench::has_flag(argc, argv, "--profile");
  const int bracket = std::stoi(bench::arg_value(argc, argv, "--bracket", "0"));
  bench::SplitChoice split;
  if (!bench::parse_split(bench::arg_value(argc, argv, "--split", "dynamic"), &split)) {
    fmt::print(stderr, "bench_moe: --split takes dynamic, static or alternate\n");
    return 1;
  }

  auto model_or = Model::load(dir);
  if (!model_or.is_ok()) {
    fmt::print(stderr, "bench_moe: {}\n", model_or.status().message());
    return 1;
  }
  const Model& m = **model_or;
  if (!m.config().moe.enabled()) {
    fmt::print(stderr, "bench_moe: {} is not a mixture-of-experts model\n", dir);
    return 1;
  }
  ThreadPool pool(threads);
  const CpuFeatures cpu = CpuFeatures::detect();
  ExecContext ctx(pool, cpu);
  ctx.set_column_split(split.split);
  const double bw = bw_override > 0 ? bw_override : measure_memory_bandwidth(pool, cpu).read_gbs;
  (void)decode_batch1(m, ctx, prompt, 4);  // warm the page cache and the kernels' scratch
  const Batch1 b1 = decode_batch1(m, ctx, prompt, n_new, profile, split, bw);
  const double frac = b1.bytes_per_token * b1.tps / (bw * 1e9);
  const double frac_median = b1.bytes_per_token * b1.median_tps / (bw * 1e9);
  const Bracketed br = bracket > 0 ? decode_bracketed(m, ctx, prompt, n_new, bracket) : Bracketed{};
  const Engine16 e = decode_engine(m, ctx, conc, prompt, n_new);
  const MoeConfig& moe = m.config().moe;
  if (json) {
    fmt::print("{}\n", nlohmann::json{{"model", dir},
                                      {"threads", threads},
                                      {"read_bandwidth_gbs", bw},
                                      {"batch1_decode_tps", b1.tps},
                                      {"batch1_bytes_per_token", b1.bytes_per_token},
                                      {"batch1_experts_per_token", b1.experts_per_token},
                                      {"batch1_fraction_of_bandwidth", frac},
                                      {"batch1_median_token_tps", b1.median_tps},
                                      {"batch1_median_fraction_of_bandwidth", frac_median},
                                      {"concurrency", conc},
                                      {"engine_decode_tps", e.decode_tps},
                                      {"engine_decode_steps", e.decode_steps},
                                      {"distinct_experts_per_layer_step", e.distinct_per_layer_step},
                                      {"token_expert_pairs_per_layer_step", e.pairs_per_layer_step},
                                      {"experts", moe.n_experts},
                                      {"top_k", moe.top_k},
                                      {"split", split.alternate ? "alternate" : split.split == ColumnSplit::kStatic ? "static" : "dynamic"},
                                      {"profile", b1.profile},
                                      {"alternate", b1.alternate},
                                      {"bracket_probes_gbs", br.probes_gbs},
                                      {"bracket_fractions", br.fractions},
                                      {"bracket_median_fraction", br.median_fraction}}
                           .dump());
    return 0;
  }
  fmt::print("{} | {} threads | read bandwidth {:.1f} GB/s (same run)\n", dir, threads, bw);
  fmt::print("batch-1 decode: {:.2f} tok/s; {:.0f} MB of weights per token ({:.1f} experts of {} per token over "
             "{} MoE layers) -> {:.1f} GB/s = {:.1f}% of read bandwidth; median token {:.2f} tok/s = {:.1f}%\n",
             b1.tps, b1.bytes_per_token / 1e6, b1.experts_per_token, moe.n_experts, moe.n_moe_layers(m.config().n_layers),
             b1.bytes_per_token * b1.tps / 1e9, 100 * frac, b1.median_tps, 100 * frac_median);
  if (profile) fmt::print("{}\n", b1.profile);
  if (split.alternate) fmt::print("{}\n", b1.alternate);
  if (bracket > 0) {
    std::string probes, fracs;
    for (double g : br.probes_gbs) probes += fmt::format(" {:.1f}", g);
    for (double f : br.fractions) fracs += fmt::format(" {:.1f}%", 100 * f);
    fmt::print("bracketed batch-1 decode, {} segments of {} tokens: probes (GB/s){}; each segment against the mean "
               "of the probes around it:{}; median {:.1f}%\n",
               bracket, n_new, probes, fracs, 100 * br.median_fraction);
  }
  fmt::print("{} requests through the engine, decode phase: {:.2f} tok/s over {} steps; per MoE layer and step "
             "{:.1f} distinct experts read (of {}) vs {:.1f} token-expert passes without grouping ({:.2f}x fewer)\n",
             conc, e.decode_tps, e.decode_steps, e.distinct_per_layer_step, moe.n_experts, e.pairs_per_layer_step,
             e.pairs_per_layer_step / e.distinct_per_layer_step);
  return 0;
}
