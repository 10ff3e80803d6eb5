// End-to-end generation speed of one model on this CPU (the protocol):
//   decode:  batch 1, 128 new tokens after a 128-token prompt -> tokens/s and the fraction of the
//            measured memory bandwidth (weight bytes streamed per token / time per token / bandwidth)
//   prefill: a 512-token prompt -> tokens/s
//   start:   Model::load + prefill of a short prompt + first token, warm page cache
// Usage: bench_generate MODEL_DIR|FILE.gguf [--threads N] [--bandwidth-gbs X] [--prompt 128] [--decode 128]
//        [--prefill 512] [--lm-head auto|dense|int8|int4] [--activations f32|bf16] [--split dynamic|static|alternate]
//        [--profile] [--json] [--pack-at-load on|off]
//        (threads: 1 and 2 unless given; --activations as tern's option: bf16 lets prefill use bf16-dot GEMMs;
//        --split: how decode GEMV regions share their rows (core/exec_context.h); --profile: one more line per
//        thread count, where a decode token's time goes (bench_decode_profile.h), and the median token's rate)
#include <fmt/format.h>

#include <chrono>
#include <nlohmann/json.hpp>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "bench_common.h"
#include "bench_decode_profile.h"
#include "core/cpu_features.h"
#include "kernels/cpu/read_bandwidth.h"
#include "model/decoder.h"
#include "model/model.h"
#include "runtime/sampler.h"

using namespace tern;
using Clock = std::chrono::steady_clock;

namespace {

double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

struct Figures {
  double prefill_tps = 0, decode_tps = 0, start_s = 0;
};

// Greedy decode of n_new tokens after prompt; returns decode tokens/s (prompt excluded).
double decode_rate(const Model& m, ExecContext& ctx, const std::vector<int32_t>& prompt, int n_new,
                   bench::DecodeProfile& prof, bench::SplitChoice split) {
  Decoder dec(m);
  SequenceKvCache kv(m.config(), int64_t(prompt.size()) + n_new);
  std::vector<float> hidden(size_t(m.config().hidden_size)), logits(size_t(m.config().vocab_size));
  (void)dec.forward(ctx, kv, prompt.data(), int64_t(prompt.size()), 1, hidden.data());
  dec.logits(ctx, hidden.data(), 1, logits.data());
  int32_t next = argmax(logits.data(), m.config().vocab_size);
  const auto t0 = Clock::now();
  for (int i = 0; i < n_new; ++i) {
    ctx.set_column_split(split.for_token(i));
    prof.token_begin(ctx.pool());
    (void)dec.forward(ctx, kv, &next, 1, 1, hidden.data());
    dec.logits(ctx, hidden.data(), 1, logits.data());
    next = argmax(logits.data(), m.config().vocab_size);
    prof.token_end(split.for_token(i));
  }
  const double rate = n_new / seconds_since(t0);
  ctx.set_column_split(split.split);
  prof.detach(ctx.pool());
  return rate;
}

double prefill_rate(const Model& m, ExecContext& ctx, const std::vector<int32_t>& prompt) {
  Decoder dec(m);
  SequenceKvCache kv(m.config(), int64_t(prompt.size()));
  std::vector<float> hidden(size_t(m.config().hidden_size)), logits(size_t(m.config().vocab_size));
  const auto t0 = Clock::now();
  (void)dec.forward(ctx, kv, prompt.data(), int64_t(prompt.size()), 1, hidden.data());
  dec.logits(ctx, hidden.data(), 1, logits.data());
  return double(prompt.size()) / seconds_since(t0);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    fmt::print(stderr, "usage: bench_generate MODEL_DIR [--threads N] [--bandwidth-gbs X] [--json]\n");
    return 2;
  }
  const std::string dir = argv[1];
  std::vector<int> thread_counts = {1, 2};
  if (const std::string t = bench::arg_value(argc, argv, "--threads", ""); !t.empty()) thread_counts = {std::stoi(t)};
  const double bandwidth_override = std::stod(bench::arg_value(argc, argv, "--bandwidth-gbs", "0"));
  const bool json = bench::has_flag(argc, argv, "--json");
  // --lm-head auto|dense|int8|int4: how the LM head is stored (model/model.h LmHeadFormat).
  ModelLoadOptions load_options;
  if (auto f = parse_lm_head_format(bench::arg_value(argc, argv, "--lm-head", "auto")); f.is_ok()) {
    load_options.lm_head = *f;
  } else {
    fmt::print(stderr, "bench_generate: {}\n", f.status().message());
    return 1;
  }
  // Protocol sizes (defaults: the 128-token prompt, 128 decoded tokens, 512-token prefill; 0 skips prefill).
  const int n_prompt = std::stoi(bench::arg_value(argc, argv, "--prompt", "128"));
  const int n_decode = std::stoi(bench::arg_value(argc, argv, "--decode", "128"));
  const int n_prefill = std::stoi(bench::arg_value(argc, argv, "--prefill", "512"));
  const auto activations = bench::arg_value(argc, argv, "--activations", "f32") == "bf16" ? ActivationPrecision::kBf16
                                                                                       : ActivationPrecision::kF32;
  // As tern's CLI: layers packed at load for the bf16-dot GEMMs where they run (model/bf16_weights.h);
  // --pack-at-load off keeps them as stored (the GEMM then packs per call), to compare the two.
  load_options.bf16_dot_layers = activations == ActivationPrecision::kBf16 &&
                                 CpuFeatures::detect().avx512_bf16 &&
                                 bench::arg_value(argc, argv, "--pack-at-load", "on") != "off";
  const bool profile = bench::has_flag(argc, argv, "--profile");
  bench::SplitChoice split;
  if (!bench::parse_split(bench::arg_value(argc, argv, "--split", "dynamic"), &split)) {
    fmt::print(stderr, "bench_generate: --split takes dynamic, static or alternate\n");
    return 1;
  }
  const CpuFeatures cpu = CpuFeatures::detect();
  std::vector<nlohmann::json> rows;
  for (int threads : thread_counts) {
    ThreadPool pool(threads);
    ExecContext ctx(pool, cpu, activations);
    ctx.set_column_split(split.split);
    // Start-up: load (mmap, validate, bind) + 8-token prompt + first token.
    const auto t0 = Clock::now();
    auto loaded = Model::load(dir, load_options);
    if (!loaded.is_ok()) {
      fmt::print(stderr, "bench_generate: {}\n", loaded.status().message());
      return 1;
    }
    const Model& m = **loaded;
    {
      Decoder dec(m);
      SequenceKvCache kv(m.config(), 8);
      std::vector<float> hidden(size_t(m.config().hidden_size)), logits(size_t(m.config().vocab_size));
      const auto ids = bench::random_ids(8, m.config().vocab_size, 1);
      (void)dec.forward(ctx, kv, ids.data(), 8, 1, hidden.data());
      dec.logits(ctx, hidden.data(), 1, logits.data());
    }
    const double start_s = seconds_since(t0);
    const double bw = bandwidth_override > 0 ? bandwidth_override : measure_memory_bandwidth(pool, cpu).read_gbs;
    bench::DecodeProfile prof(profile);
    const double decode = decode_rate(m, ctx, bench::random_ids(n_prompt, m.config().vocab_size, 2), n_decode, prof, split);
    const double prefill = n_prefill > 0 ? prefill_rate(m, ctx, bench::random_ids(n_prefill, m.config().vocab_size, 3)) : 0;
    const double bytes = double(m.weight_bytes_per_token());
    const double frac = bytes * decode / (bw * 1e9);
    nlohmann::json r = {{"model", dir},           {"threads", threads},   {"cpu", cpu.describe()},
                        {"decode_tok_s", decode}, {"prefill_tok_s", prefill}, {"start_to_first_token_s", start_s},
                        {"weight_bytes_per_token", bytes}, {"read_bandwidth_gbs", bw}, {"decode_fraction_of_bandwidth", frac}};
    rows.push_back(r);
    if (!json) {
      fmt::print("{} | threads {} | decode {:.2f} tok/s ({:.1f}% of {:.1f} GB/s read bandwidth, {:.0f} MB/token) | "
                 "prefill-{} {:.1f} tok/s | start to first token {:.3f} s\n",
                 dir, threads, decode, 100 * frac, bw, bytes / 1e6, n_prefill, prefill, start_s);
      if (profile) {
        const double median_tps = prof.median_s() > 0 ? 1.0 / prof.median_s() : 0;
        fmt::print("median token {:.2f} tok/s ({:.1f}% of the read bandwidth); {}\n", median_tps,
                   100 * bytes * median_tps / (bw * 1e9), prof.summary());
      }
      if (split.alternate) fmt::print("{}\n", prof.alternate_summary(bytes, bw));
    }
  }
  if (json) fmt::print("{}\n", nlohmann::json(rows).dump(2));
  return 0;
}
