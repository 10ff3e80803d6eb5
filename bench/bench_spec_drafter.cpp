// How well the n-gram drafter would do, without timing anything (docs/speculative.md): greedy output
// is the same with and without speculation, so each prompt's greedy continuation is computed once
// (the EngineCore over the CpuModelRunner, bf16 KV, as `tern bench offline` runs it) and the engine's
// drafting policy is then replayed over it exactly: at every step the drafter proposes from the
// verified tokens, the drafts that agree with the greedy continuation are accepted, and the draft
// length / back-off adapt as the engine's do. Prints, per configuration, the steps a request needs,
// how many of them drafted, the acceptance, and the decode speed-up predicted from the cost of a
// step by its rows (--step-costs: steps of 2, 3 .. 8 rows in plain one-row steps; the default is
// docs-llama-28m's on dev-zen5 at 2 threads, as --timed measures it).
// Usage: bench_spec_drafter MODEL_DIR PROMPTS.jsonl [--requests 8] [--output-len 128]
//                           [--step-costs 1.12,1.24,1.40,1.87,2.09,2.30,2.50]
//                           [--dump FILE] [--traces FILE] [--timed REPS] [--threads 2]
//   --dump FILE: write the traces ({"prompt": [...], "output": [...]} per line); --traces FILE: read
//   them instead of running the model.
//   --timed REPS: also time decoding, request by request in turn through four engines in one
//   process (no speculation; the n-gram drafter as it was before the match-sized proposals: the most
//   recent 2..4-gram, the engine's acceptance-driven length and pauses, 5 drafts, 8 rows; the n-gram
//   drafter with 8 rows; with the default settings), so that all of them see the same moments of a
//   shared machine. Prints decode
//   tok/s (first token to last, prefill excluded) and the median forward time by rows per step.
#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <map>

#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "bench_common.h"
#include "engine/cpu_model_runner.h"
#include "engine/engine_core.h"
#include "engine/ngram_drafter.h"
#include "engine/speculative_config.h"
#include "text/tokenizer/tokenizer.h"

using namespace tern;

namespace {

struct Trace {
  std::vector<int32_t> prompt, output;
};

[[noreturn]] void die(const std::string& m) {
  fmt::print(stderr, "bench_spec_drafter: {}\n", m);
  std::exit(1);
}

std::vector<std::string> read_prompt_texts(const std::string& path) {
  std::ifstream in(path);
  if (!in) die("cannot read " + path);
  std::vector<std::string> out;
  for (std::string line; std::getline(in, line);) {
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    auto j = nlohmann::json::parse(line, nullptr, false);
    if (!j.is_object() || !j.contains("prompt") || !j["prompt"].is_string()) die(path + ": expected {\"prompt\": ...} lines");
    out.push_back(j["prompt"].get<std::string>());
  }
  return out;
}

// Greedy continuations through the engine, one request at a time (as at 1 in flight).
std::vector<Trace> run_greedy(const std::string& dir, const std::vector<std::string>& texts, int64_t requests,
                              int64_t output_len) {
  auto loaded = Model::load(dir);
  if (!loaded.is_ok()) die(loaded.status().message());
  auto tok = Tokenizer::load(dir);
  if (!tok.is_ok()) die(tok.status().message());
  const Model& m = **loaded;
  ThreadPool pool(2);
  ExecContext ctx(pool, CpuFeatures::detect());
  constexpr int kBlock = 16;
  CpuModelRunner runner(m, ctx, 512, 16);
  const int64_t blocks = 2048;
  if (Status s = runner.allocate_kv({blocks, kBlock, KvDType::BF16}); !s.is_ok()) die(s.message());
  EngineCoreConfig cfg;
  cfg.num_blocks = blocks;
  cfg.block_size = kBlock;
  auto core = EngineCore::create(runner, nullptr, cfg);
  if (!core.is_ok()) die(core.status().message());
  std::vector<Trace> traces;
  for (int64_t i = 0; i < requests; ++i) {
    Trace t;
    t.prompt = tok->encode(texts[size_t(i) % texts.size()]);
    EngineRequest r;
    r.prompt = t.prompt;
    r.max_new_tokens = output_len;
    r.sampling.temperature = 0;
    r.ignore_eos = true;
    bool done = false;
    Status st = (*core)->add(RequestId(i + 1), std::move(r), [&](RequestId, const EngineOutput& out) {
      t.output.insert(t.output.end(), out.tokens.begin(), out.tokens.end());
      if (out.finish != EngineFinish::kNone) done = true;
    });
    if (!st.is_ok()) die(st.message());
    while (!done) (*core)->step();
    traces.push_back(std::move(t));
  }
  return traces;
}

struct SimResult {
  int64_t steps = 0, drafted_steps = 0, drafted = 0, accepted = 0, tokens = 0;
  double cost = 0;  // in one-row steps
};

// Replays the engine's drafting over one greedy continuation at 1 in flight, exactly as
// EngineCore::propose_drafts / verify do it (engine_speculative.cpp): the same DraftPacer, the same
// caps (max_new, max_batch_rows), the drafter's own proposals.
void simulate(const Trace& t, const SpeculativeConfig& sc, const std::vector<double>& step_cost, SimResult* r) {
  NgramDrafter drafter(sc.prompt_lookup_min, sc.prompt_lookup_max);
  Sequence seq;
  seq.tokens = t.prompt;
  seq.tokens.push_back(t.output[0]);  // the prefill's token
  size_t done = 1;
  DraftPacer pacer(sc.num_speculative_tokens, drafter.sizes_drafts());
  std::vector<DraftSlot> slots(1);
  while (done < t.output.size()) {
    const int64_t left = int64_t(t.output.size() - done);
    const DraftPacer::Ask ask = pacer.next();
    const int64_t k = std::min<int64_t>({int64_t(ask.max_tokens), left - 1, int64_t(sc.max_batch_rows) - 1});
    std::vector<int32_t> drafts;
    if (k > 0) {
      slots[0] = DraftSlot();
      slots[0].seq = &seq;
      slots[0].max_tokens = k;
      slots[0].allow_tentative = ask.allow_tentative;
      (void)drafter.propose(slots);
      drafts = slots[0].tokens;
      pacer.proposed(slots[0].tentative);
    }
    int64_t acc = 0;
    while (acc < int64_t(drafts.size()) && drafts[size_t(acc)] == t.output[done + size_t(acc)]) ++acc;
    const int64_t emit = std::min<int64_t>(acc + 1, left);
    seq.tokens.insert(seq.tokens.end(), t.output.begin() + int64_t(done), t.output.begin() + int64_t(done) + emit);
    done += size_t(emit);
    r->steps += 1;
    r->cost += drafts.empty() ? 1.0 : step_cost[std::min(drafts.size(), step_cost.size()) - 1];
    r->tokens += emit;
    if (!drafts.empty()) {
      r->drafted_steps += 1;
      r->drafted += int64_t(drafts.size());
      r->accepted += acc;
    }
    pacer.after_step(int64_t(drafts.size()), acc);
  }
}

// The n-gram drafter before proposals were sized by their match (commit ccda733): the most recent
// occurrence of the longest 2..4-token suffix, max_tokens long; the engine sizes and pauses it.
class PreviousNgramDrafter final : public Drafter {
 public:
  const char* name() const override { return "ngram-previous"; }
  Status propose(std::vector<DraftSlot>& slots) override {
    for (DraftSlot& s : slots) {
      s.tokens = NgramDrafter::lookup(s.seq->tokens, 2, 4, s.max_tokens);
      s.probs.clear();
    }
    return Status::ok();
  }
};

// Forwards to the CPU runner and records each decode step's forward time by its token rows.
class TimingRunner final : public ModelRunner {
 public:
  explicit TimingRunner(ModelRunner& inner) : inner_(inner) {}
  int64_t vocab_size() const override { return inner_.vocab_size(); }
  int64_t max_context() const override { return inner_.max_context(); }
  size_t kv_block_bytes(int b, KvDType d) const override { return inner_.kv_block_bytes(b, d); }
  Status allocate_kv(const KvPoolSpec& spec) override { return inner_.allocate_kv(spec); }
  int64_t max_logits_per_sequence() const override { return inner_.max_logits_per_sequence(); }
  Status forward(const StepBatch& batch, float* logits) override {
    const double t0 = bench::now_s();
    Status st = inner_.forward(batch, logits);
    const int64_t rows = int64_t(batch.token_ids.size());
    if (rows <= 16) by_rows[rows].push_back(bench::now_s() - t0);
    return st;
  }
  std::map<int64_t, std::vector<double>> by_rows;

 private:
  ModelRunner& inner_;
};

struct TimedEngine {
  std::string name;
  std::unique_ptr<CpuModelRunner> cpu;
  std::unique_ptr<TimingRunner> timing;
  std::unique_ptr<Drafter> drafter;
  std::unique_ptr<EngineCore> core;
  double decode_s = 0;
  int64_t decode_tokens = 0;
};

void run_timed(const std::string& dir, const std::vector<std::string>& texts, int64_t requests, int64_t output_len,
               int reps, int threads) {
  auto loaded = Model::load(dir);
  if (!loaded.is_ok()) die(loaded.status().message());
  auto tok = Tokenizer::load(dir);
  if (!tok.is_ok()) die(tok.status().message());
  const Model& m = **loaded;
  ThreadPool pool(threads);
  ExecContext ctx(pool, CpuFeatures::detect());
  constexpr int kBlock = 16;
  const int64_t blocks = 256;
  // none; the previous n-gram rule with the previous defaults (5 drafts, 8 rows); the n-gram drafter
  // with 8 rows; with the defaults.
  const int n_engines = 4;
  std::vector<TimedEngine> engines(n_engines);
  for (int e = 0; e < n_engines; ++e) {
    TimedEngine& te = engines[size_t(e)];
    te.name = e == 0 ? "none" : e == 1 ? "ngram, previous rule (5 drafts, 8 rows)" : e == 2 ? "ngram, 8 rows" : "ngram, defaults";
    te.cpu = std::make_unique<CpuModelRunner>(m, ctx, 512, 16);
    te.timing = std::make_unique<TimingRunner>(*te.cpu);
    if (Status st = te.timing->allocate_kv({blocks, kBlock, KvDType::BF16}); !st.is_ok()) die(st.message());
    EngineCoreConfig cfg;
    cfg.num_blocks = blocks;
    cfg.block_size = kBlock;
    if (e > 0) cfg.speculative.method = SpeculativeMethod::kNgram;
    if (e == 1) {
      te.drafter = std::make_unique<PreviousNgramDrafter>();
      cfg.speculative.num_speculative_tokens = 5;
    }
    if (e == 1 || e == 2) cfg.speculative.max_batch_rows = 8;
    auto core = EngineCore::create(*te.timing, nullptr, cfg, te.drafter.get());
    if (!core.is_ok()) die(core.status().message());
    te.core = std::move(*core);
  }
  RequestId next_id = 1;
  for (int rep = 0; rep < reps; ++rep) {
    for (int64_t i = 0; i < requests; ++i) {
      const std::vector<int32_t> prompt = tok->encode(texts[size_t(i) % texts.size()]);
      for (int j = 0; j < n_engines; ++j) {
        TimedEngine& te = engines[size_t((j + i + rep) % n_engines)];  // rotate who goes first
        EngineRequest r;
        r.prompt = prompt;
        r.max_new_tokens = output_len;
        r.sampling.temperature = 0;
        r.ignore_eos = true;
        bool done = false;
        double first = 0, last = 0;
        int64_t n = 0;
        Status st = te.core->add(next_id++, std::move(r), [&](RequestId, const EngineOutput& out) {
          const double now = bench::now_s();
          if (n == 0 && !out.tokens.empty()) first = now;
          n += int64_t(out.tokens.size());
          last = now;
          if (out.finish != EngineFinish::kNone) done = true;
        });
        if (!st.is_ok()) die(st.message());
        while (!done) te.core->step();
        te.decode_s += last - first;
        te.decode_tokens += n - 1;
      }
    }
  }
  const double base = double(engines[0].decode_tokens) / engines[0].decode_s;
  fmt::print("\n| engine | decode tok/s | vs none | spec steps | drafted | accepted | mean accepted length |\n|---|---|---|---|---|---|---|\n");
  for (const TimedEngine& te : engines) {
    const double r = double(te.decode_tokens) / te.decode_s;
    const EngineMetrics mm = te.core->metrics();
    fmt::print("| {} | {:.1f} | {:.3f} | {} | {} | {} | {:.2f} |\n", te.name, r, r / base, mm.spec_verify_steps,
               mm.spec_draft_tokens, mm.spec_accepted_tokens,
               mm.spec_verify_steps ? double(mm.spec_emitted_tokens) / double(mm.spec_verify_steps) : 0.0);
  }
  // Forward time by rows, over all three engines (the same runner code): median, and relative to 1 row.
  std::map<int64_t, std::vector<double>> all;
  for (const TimedEngine& te : engines)
    for (const auto& [rows, v] : te.timing->by_rows) all[rows].insert(all[rows].end(), v.begin(), v.end());
  auto median = [](std::vector<double> v) {
    std::sort(v.begin(), v.end());
    return v.empty() ? 0.0 : v[v.size() / 2];
  };
  const double one = median(all[1]);
  fmt::print("\n| rows | steps | median forward ms | vs 1 row |\n|---|---|---|---|\n");
  for (const auto& [rows, v] : all)
    fmt::print("| {} | {} | {:.3f} | {:.2f} |\n", rows, v.size(), 1e3 * median(v), one > 0 ? median(v) / one : 0.0);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 3) {
    fmt::print(stderr, "usage: bench_spec_drafter MODEL_DIR PROMPTS.jsonl [--requests 8] [--output-len 128] "
                       "[--step-costs 1.12,1.24,...] [--dump FILE] [--traces FILE] [--timed REPS] [--threads 2]\n");
    return 2;
  }
  const int64_t requests = std::stoll(bench::arg_value(argc, argv, "--requests", "8"));
  const int64_t output_len = std::stoll(bench::arg_value(argc, argv, "--output-len", "128"));
  std::vector<double> step_cost;  // [d - 1]: a step with d drafts (d + 1 rows), in one-row steps
  for (const std::string& v : bench::split_commas(bench::arg_value(argc, argv, "--step-costs", "1.12,1.24,1.40,1.87,2.09,2.30,2.50")))
    step_cost.push_back(std::stod(v));
  if (step_cost.empty()) die("--step-costs: no values");
  const std::string dump = bench::arg_value(argc, argv, "--dump", "");
  const std::string traces_in = bench::arg_value(argc, argv, "--traces", "");
  const int timed = std::stoi(bench::arg_value(argc, argv, "--timed", "0"));
  const int threads = std::stoi(bench::arg_value(argc, argv, "--threads", "2"));
  std::vector<Trace> traces;
  if (!traces_in.empty()) {
    std::ifstream in(traces_in);
    for (std::string line; std::getline(in, line);) {
      if (line.empty()) continue;
      auto j = nlohmann::json::parse(line);
      traces.push_back({j["prompt"].get<std::vector<int32_t>>(), j["output"].get<std::vector<int32_t>>()});
    }
  } else {
    traces = run_greedy(argv[1], read_prompt_texts(argv[2]), requests, output_len);
  }
  if (!dump.empty()) {
    std::ofstream out(dump);
    for (const Trace& t : traces) out << nlohmann::json({{"prompt", t.prompt}, {"output", t.output}}).dump() << "\n";
  }
  fmt::print("| rows | k | lookup n | steps | drafted steps | drafted | accepted | acceptance | tokens/step | predicted speed-up |\n");
  fmt::print("|---|---|---|---|---|---|---|---|---|---|\n");
  for (int rows : {4, 8}) {
    for (int k : {3, 5, 7}) {
      if (k >= rows && k != rows - 1 && k != 3) continue;  // capped at rows - 1 anyway
      for (auto [lo, hi] : {std::pair{1, 8}, std::pair{2, 8}, std::pair{1, 4}}) {
        SpeculativeConfig sc;
        sc.max_batch_rows = rows;
        sc.num_speculative_tokens = k;
        sc.prompt_lookup_min = lo;
        sc.prompt_lookup_max = hi;
        SimResult r;
        for (const Trace& t : traces) simulate(t, sc, step_cost, &r);
        const double speedup = r.cost > 0 ? double(r.tokens) / r.cost : 0;
        fmt::print("| {} | {} | {}..{} | {} | {} | {} | {} | {:.1f}% | {:.2f} | {:.2f} |\n", rows, k, lo, hi, r.steps,
                   r.drafted_steps, r.drafted, r.accepted,
                   r.drafted ? 100.0 * double(r.accepted) / double(r.drafted) : 0.0, double(r.tokens) / double(r.steps),
                   speedup);
      }
    }
  }
  if (timed > 0) run_timed(argv[1], read_prompt_texts(argv[2]), requests, output_len, timed, threads);
  return 0;
}
