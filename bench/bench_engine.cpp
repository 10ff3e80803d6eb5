// Serving-engine figures (issue 5).
//   bench_engine --fake [--json]
//       KV memory wasted (allocated slots not holding a token) under a mixed workload, and the
//       engine's own cost per step, with the weightless FakeModelRunner.
//   bench_engine MODEL_DIR [--threads N] [--concurrency 1,4,16,64] [--prompt P] [--output O] [--json]
//       C requests in flight at once (prompt P random tokens, O generated, greedy, EOS ignored):
//       aggregate generated tokens/s, and the decode phase alone (from the moment every request has
//       its first token to the end).
//   bench_engine MODEL_DIR ... --grammar FILE.gbnf
//       the same, each level unconstrained and with every request under the grammar (GBNF, compiled
//       against MODEL_DIR/tokenizer.json), alternated: the constraint's end-to-end cost.
//   bench_engine MODEL_DIR --prefix-reuse [--threads N]
//       32 requests sharing a 1,000-token system prompt, one after the other: time to first token of
//       the first (computes the prefix) vs the mean of requests 2..32 (served by the prefix cache).
#include <fmt/format.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <nlohmann/json.hpp>
#include <random>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "bench_common.h"
#include "engine/engine.h"
#include "engine/engine_core.h"
#include "engine/fake_model_runner.h"
#if __has_include("engine/cpu_model_runner.h")
#include "constrain/token_constraint.h"
#include "constrain/token_vocabulary.h"
#include "core/mapped_file.h"
#include "engine/cpu_model_runner.h"
#include "model/model.h"
#include "text/tokenizer/tokenizer.h"
#define TERN_BENCH_HAVE_CPU_RUNNER 1
#endif

using namespace tern;
using Clock = std::chrono::steady_clock;

namespace {

double seconds(Clock::time_point a, Clock::time_point b) { return std::chrono::duration<double>(b - a).count(); }

// Slots of used blocks that hold no computed token (a block shared by several sequences counts once).
std::pair<int64_t, int64_t> kv_waste(const EngineCore& core) {
  const int bs = core.kv().block_size();
  std::vector<int64_t> filled(size_t(core.kv().num_blocks()), 0);
  for (const Sequence* s : core.scheduler().running()) {
    const auto& table = core.kv().table(s->id);
    for (size_t i = 0; i < table.size(); ++i) {
      const int64_t in_block = std::clamp<int64_t>(s->num_computed - int64_t(i) * bs, 0, bs);
      filled[size_t(table[i])] = std::max(filled[size_t(table[i])], in_block);
    }
  }
  int64_t holding = 0;
  for (int64_t f : filled) holding += f;
  const int64_t allocated = core.kv().num_used() * bs;
  return {allocated - holding, allocated};
}

int run_fake(bool json) {
  const int64_t vocab = 256;
  FakeModelRunner runner({.vocab_size = vocab, .max_context = 8192});
  EngineCoreConfig cfg;
  cfg.num_blocks = 4096;
  cfg.block_size = 16;
  cfg.scheduler.max_step_tokens = 512;
  cfg.scheduler.max_running = 64;
  (void)runner.allocate_kv({cfg.num_blocks, cfg.block_size, KvDType::BF16});
  auto core_or = EngineCore::create(runner, nullptr, cfg);
  if (!core_or.is_ok()) return 1;
  EngineCore& core = **core_or;
  std::mt19937_64 rng(7);
  auto uniform = [&](int lo, int hi) { return int(std::uniform_int_distribution<int>(lo, hi)(rng)); };
  const int n_requests = 400;
  for (int i = 0; i < n_requests; ++i) {  // mixed: short chats to long documents
    EngineRequest r;
    r.prompt = bench::random_ids(uniform(8, 1500), vocab, uint64_t(i));
    r.max_new_tokens = uniform(8, 600);
    r.ignore_eos = true;
    r.sampling.temperature = 0;
    (void)core.add(RequestId(i + 1), std::move(r), nullptr);
  }
  int64_t wasted = 0, allocated = 0, steps = 0, tokens = 0;
  const auto t0 = Clock::now();
  while (core.has_work()) {
    core.step();
    tokens += core.last_step_tokens();
    const auto [w, a] = kv_waste(core);
    wasted += w;
    allocated += a;
    ++steps;
  }
  const double s = seconds(t0, Clock::now());
  const double waste = allocated ? double(wasted) / double(allocated) : 0;
  const auto m = core.metrics();
  if (json) {
    fmt::print("{}\n", nlohmann::json{{"requests", n_requests}, {"steps", steps}, {"kv_waste_fraction", waste},
                                      {"us_per_step", 1e6 * s / double(steps)}, {"tokens", tokens},
                                      {"preempted", m.preempted_total}}.dump());
  } else {
    fmt::print("fake runner, {} mixed requests (prompt 8..1500, output 8..600), {} blocks of 16, budget 512, "
               "64 running: {} steps, KV slots allocated but empty: {:.2f}% (mean over steps), "
               "{:.1f} us per step (engine + fake runner), {} preemptions\n",
               n_requests, cfg.num_blocks, steps, 100 * waste, 1e6 * s / double(steps), m.preempted_total);
  }
  return 0;
}

#ifdef TERN_BENCH_HAVE_CPU_RUNNER
struct LevelResult {
  int concurrency = 0;
  double wall_s = 0, generated_tps = 0, decode_tps = 0, ttft_mean_s = 0;
};

// grammar: every request decodes under it (null: unconstrained).
LevelResult run_level(const Model& model, ExecContext& ctx, int c, int64_t prompt, int64_t output,
                      const std::shared_ptr<const Grammar>& grammar = nullptr) {
  EngineOptions eo;
  eo.max_running = std::max(c, 1);
  eo.max_step_tokens = 512;
  eo.kv_memory_bytes = 0;
  auto runner = std::make_unique<CpuModelRunner>(model, ctx, eo.max_step_tokens, eo.max_running);
  const size_t block_bytes = runner->kv_block_bytes(eo.block_size, eo.kv_dtype);
  eo.kv_memory_bytes = block_bytes * size_t(c) * size_t((prompt + output + 15) / 16 + 1);
  auto engine_or = Engine::create(std::move(runner), nullptr, eo);
  if (!engine_or.is_ok()) {
    fmt::print(stderr, "bench_engine: {}\n", engine_or.status().message());
    std::exit(1);
  }
  auto& engine = **engine_or;
  std::mutex mu;
  std::condition_variable cv;
  int done = 0, have_first = 0;
  Clock::time_point all_first;
  int64_t tokens_total = 0, tokens_at_all_first = 0;
  double ttft_sum = 0;
  const auto t0 = Clock::now();
  std::vector<bool> first(size_t(c) + 1, false);
  for (int i = 0; i < c; ++i) {
    EngineRequest r;
    r.prompt = bench::random_ids(prompt, model.config().vocab_size, uint64_t(1000 + i));
    r.max_new_tokens = output;
    r.ignore_eos = true;
    r.sampling.temperature = 0;
    r.grammar = grammar;
    auto id = engine.add(std::move(r), [&](RequestId rid, const EngineOutput& out) {
      std::lock_guard lk(mu);
      tokens_total += int64_t(out.tokens.size());
      if (!out.tokens.empty() && !first[size_t(rid) % first.size()]) {
        first[size_t(rid) % first.size()] = true;
        ttft_sum += seconds(t0, Clock::now());
        if (++have_first == c) {
          all_first = Clock::now();
          tokens_at_all_first = tokens_total;
        }
      }
      if (out.finish != EngineFinish::kNone) {
        ++done;
        cv.notify_all();
      }
    });
    if (!id.is_ok()) {
      fmt::print(stderr, "bench_engine: {}\n", id.status().message());
      std::exit(1);
    }
  }
  std::unique_lock lk(mu);
  cv.wait(lk, [&] { return done == c; });
  const auto t1 = Clock::now();
  LevelResult r;
  r.concurrency = c;
  r.wall_s = seconds(t0, t1);
  r.generated_tps = double(tokens_total) / r.wall_s;
  r.decode_tps = double(tokens_total - tokens_at_all_first) / seconds(all_first, t1);
  r.ttft_mean_s = ttft_sum / c;
  return r;
}

// One request at a time; returns its time to first token.
double ttft_of(Engine& engine, std::vector<int32_t> prompt) {
  std::mutex mu;
  std::condition_variable cv;
  bool done = false;
  double ttft = -1;
  EngineRequest r;
  r.prompt = std::move(prompt);
  r.max_new_tokens = 4;
  r.ignore_eos = true;
  r.sampling.temperature = 0;
  const auto t0 = Clock::now();
  auto id = engine.add(std::move(r), [&](RequestId, const EngineOutput& out) {
    std::lock_guard lk(mu);
    if (ttft < 0 && !out.tokens.empty()) ttft = seconds(t0, Clock::now());
    if (out.finish != EngineFinish::kNone) {
      done = true;
      cv.notify_all();
    }
  });
  if (!id.is_ok()) return -1;
  std::unique_lock lk(mu);
  cv.wait(lk, [&] { return done; });
  return ttft;
}

int run_prefix_reuse(const std::string& dir, int threads, bool json) {
  auto loaded = Model::load(dir);
  if (!loaded.is_ok()) {
    fmt::print(stderr, "bench_engine: {}\n", loaded.status().message());
    return 1;
  }
  ThreadPool pool(threads);
  ExecContext ctx(pool, CpuFeatures::detect());
  EngineOptions eo;
  eo.kv_memory_bytes = size_t(256) << 20;
  auto engine_or = Engine::create(std::make_unique<CpuModelRunner>(**loaded, ctx), nullptr, eo);
  if (!engine_or.is_ok()) {
    fmt::print(stderr, "bench_engine: {}\n", engine_or.status().message());
    return 1;
  }
  const int64_t vocab = (*loaded)->config().vocab_size;
  const auto system = bench::random_ids(1000, vocab, 42);
  double first = 0, rest = 0;
  for (int i = 0; i < 32; ++i) {
    auto p = system;
    const auto q = bench::random_ids(24, vocab, uint64_t(100 + i));
    p.insert(p.end(), q.begin(), q.end());
    const double t = ttft_of(**engine_or, p);
    (i == 0 ? first : rest) += t;
  }
  rest /= 31;
  const auto m = (*engine_or)->metrics();
  if (json) {
    fmt::print("{}\n", nlohmann::json{{"model", dir}, {"ttft_first_s", first}, {"ttft_rest_mean_s", rest},
                                      {"ratio", first / rest}, {"prefix_cache_hit_rate", m.prefix_cache_hit_rate}}.dump());
  } else {
    fmt::print("{} | {} threads | 32 requests, shared 1,000-token system prompt + 24 own tokens | TTFT first {:.3f} s, "
               "requests 2..32 mean {:.3f} s ({:.1f}x lower) | prefix-cache hit rate {:.1f}%\n",
               dir, threads, first, rest, first / rest, 100 * m.prefix_cache_hit_rate);
  }
  return 0;
}

// The grammar of --grammar FILE (GBNF), compiled against the model's tokenizer; exits on error.
std::shared_ptr<const Grammar> load_grammar(const std::string& dir, const std::string& file, int64_t vocab) {
  auto fail = [](const std::string& m) {
    fmt::print(stderr, "bench_engine: {}\n", m);
    std::exit(1);
  };
  auto tok = Tokenizer::load(dir + "/tokenizer.json");
  if (!tok.is_ok()) fail(tok.status().message());
  auto v = TokenVocabulary::from_tokenizer(*tok, vocab);
  if (!v.is_ok()) fail(v.status().message());
  auto text = read_text_file(file);
  if (!text.is_ok()) fail(text.status().message());
  auto g = compile_gbnf(*text, *v);
  if (!g.is_ok()) fail(file + ": " + g.status().message());
  return *g;
}

// With a grammar, each level runs unconstrained and constrained alternately (twice each) and prints the
// best of each: the constraint's end-to-end cost in the same window.
int run_model(const std::string& dir, int threads, const std::vector<int>& levels, int64_t prompt, int64_t output,
              bool json, const std::string& grammar_file) {
  auto loaded = Model::load(dir);
  if (!loaded.is_ok()) {
    fmt::print(stderr, "bench_engine: {}\n", loaded.status().message());
    return 1;
  }
  ThreadPool pool(threads);
  ExecContext ctx(pool, CpuFeatures::detect());
  const auto grammar =
      grammar_file.empty() ? nullptr : load_grammar(dir, grammar_file, (*loaded)->config().vocab_size);
  std::vector<nlohmann::json> rows;
  double base = 0;
  for (int c : levels) {
    if (grammar) {
      double plain = 0, constrained = 0;
      for (int rep = 0; rep < 2; ++rep) {
        plain = std::max(plain, run_level(**loaded, ctx, c, prompt, output).decode_tps);
        constrained = std::max(constrained, run_level(**loaded, ctx, c, prompt, output, grammar).decode_tps);
      }
      rows.push_back({{"model", dir}, {"concurrency", c}, {"decode_tok_s", plain},
                      {"decode_tok_s_constrained", constrained}, {"grammar", grammar_file}});
      if (!json) {
        fmt::print("{} | {} threads | concurrency {:>3} | decode phase {:.1f} tok/s, under {} {:.1f} tok/s "
                   "({:+.1f}%)\n",
                   dir, threads, c, plain, grammar_file, constrained, 100 * (constrained / plain - 1));
        std::fflush(stdout);
      }
      continue;
    }
    const LevelResult r = run_level(**loaded, ctx, c, prompt, output);
    if (base == 0) base = r.generated_tps;
    rows.push_back({{"model", dir}, {"threads", threads}, {"concurrency", c}, {"prompt", prompt}, {"output", output},
                    {"wall_s", r.wall_s}, {"generated_tok_s", r.generated_tps}, {"decode_tok_s", r.decode_tps},
                    {"ttft_mean_s", r.ttft_mean_s}});
    if (!json) {
      fmt::print("{} | {} threads | concurrency {:>3} | prompt {} output {} | {:.1f} s | generated {:.1f} tok/s "
                 "({:.2f}x of the first level) | decode phase {:.1f} tok/s | mean TTFT {:.2f} s\n",
                 dir, threads, c, prompt, output, r.wall_s, r.generated_tps, r.generated_tps / base, r.decode_tps,
                 r.ttft_mean_s);
      std::fflush(stdout);
    }
  }
  if (json) fmt::print("{}\n", nlohmann::json(rows).dump(2));
  return 0;
}
#endif

std::vector<int> parse_levels(const std::string& s) {
  std::vector<int> out;
  std::stringstream in(s);
  std::string item;
  while (std::getline(in, item, ',')) out.push_back(std::max(1, std::atoi(item.c_str())));
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  const bool json = bench::has_flag(argc, argv, "--json");
  if (bench::has_flag(argc, argv, "--fake")) return run_fake(json);
  if (argc < 2 || argv[1][0] == '-') {
    fmt::print(stderr, "usage: bench_engine --fake [--json]\n"
                       "       bench_engine MODEL_DIR [--threads N] [--concurrency 1,4,16,64] [--prompt P] "
                       "[--output O] [--grammar FILE.gbnf] [--json]\n"
                       "       bench_engine MODEL_DIR --prefix-reuse [--threads N] [--json]\n");
    return 2;
  }
#ifdef TERN_BENCH_HAVE_CPU_RUNNER
  if (bench::has_flag(argc, argv, "--prefix-reuse"))
    return run_prefix_reuse(argv[1], std::stoi(bench::arg_value(argc, argv, "--threads", "2")), json);
  return run_model(argv[1], std::stoi(bench::arg_value(argc, argv, "--threads", "2")),
                   parse_levels(bench::arg_value(argc, argv, "--concurrency", "1,4,16,64")),
                   std::stoll(bench::arg_value(argc, argv, "--prompt", "256")),
                   std::stoll(bench::arg_value(argc, argv, "--output", "128")), json,
                   bench::arg_value(argc, argv, "--grammar", ""));
#else
  (void)parse_levels;
  fmt::print(stderr, "bench_engine: this build has no CPU model runner yet\n");
  return 1;
#endif
}
