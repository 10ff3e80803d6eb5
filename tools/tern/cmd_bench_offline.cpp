// tern bench offline: N requests through the in-process Engine (no HTTP) with at most C in flight,
// closed loop (engine/offline_run.h). EOS is ignored, so every request makes exactly --output-len tokens. Reports throughput, TTFT / ITL / e2e percentiles, the decode
// phase alone, preemptions and the process's peak RSS (VmHWM).
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>
#include <string>
#include <vector>

#include "cli_common.h"
#include "parallel_session.h"
#include "core/mapped_file.h"
#include "engine/engine.h"
#include "engine/offline_run.h"
#include "kv/paged_kv_cache.h"
#include "planned_engine.h"
#include "speculative_args.h"

namespace tern::cli {

namespace {

struct BenchOfflineOptions {
  RuntimeOptions runtime;
  ParallelOptions parallel;
  std::string model;
  int64_t requests = 64;
  int64_t concurrency = 16;
  int64_t prompt_len = 128;
  int64_t output_len = 128;
  std::string prompts_file;
  std::string kv_memory;           // "" = the engine's default budget
  KvDType kv_dtype = KvDType::BF16;  // the engine's default
  int64_t max_step_tokens = 512;
  uint64_t seed = 1;
  bool json_out = false;
  SpeculativeArgs speculative;
};

// "2GiB", "512MiB", "1.5G", "300MB", "4096" (bytes). Binary and decimal suffixes both mean powers of 1024:
// a memory budget is always meant in the units the OS reports.
Result<size_t> parse_bytes(const std::string& s) {
  size_t pos = 0;
  double v = 0;
  try {
    v = std::stod(s, &pos);
  } catch (...) {
    return Status::error("--kv-memory: not a size: '" + s + "' (e.g. 2GiB, 512MiB)");
  }
  std::string unit = s.substr(pos);
  unit.erase(std::remove(unit.begin(), unit.end(), ' '), unit.end());
  for (auto& c : unit) c = char(std::tolower(static_cast<unsigned char>(c)));
  double mult = 0;
  if (unit.empty() || unit == "b") mult = 1;
  else if (unit == "k" || unit == "kb" || unit == "kib") mult = 1024.0;
  else if (unit == "m" || unit == "mb" || unit == "mib") mult = 1024.0 * 1024;
  else if (unit == "g" || unit == "gb" || unit == "gib") mult = 1024.0 * 1024 * 1024;
  else if (unit == "t" || unit == "tb" || unit == "tib") mult = 1024.0 * 1024 * 1024 * 1024;
  if (mult == 0 || !std::isfinite(v) || v <= 0 || v * mult > 1e15)
    return Status::error("--kv-memory: not a size: '" + s + "' (e.g. 2GiB, 512MiB)");
  return size_t(v * mult);
}

// Peak resident set of this process (VmHWM in /proc/self/status), 0 when unknown.
int64_t peak_rss_bytes() {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("VmHWM:", 0) == 0) return std::atoll(line.c_str() + 6) * 1024;
  }
  return 0;
}

// Prompts from a JSONL file, one {"prompt": "..."} object per non-empty line, tokenized.
std::vector<std::vector<int32_t>> read_prompts(const std::string& path, const Tokenizer& tok) {
  const std::string text = unwrap(read_text_file(path));
  std::vector<std::vector<int32_t>> out;
  size_t start = 0;
  int line_no = 0;
  while (start <= text.size()) {
    size_t end = text.find('\n', start);
    if (end == std::string::npos) end = text.size();
    std::string line = text.substr(start, end - start);
    start = end + 1;
    ++line_no;
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    auto j = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
    if (!j.is_object() || !j.contains("prompt") || !j["prompt"].is_string())
      fail(path + ":" + std::to_string(line_no) + ": expected a JSON object with a string \"prompt\"");
    auto ids = tok.encode(j["prompt"].get<std::string>());
    if (ids.empty()) fail(path + ":" + std::to_string(line_no) + ": the prompt encodes to no tokens");
    out.push_back(std::move(ids));
  }
  if (out.empty()) fail(path + ": no prompts");
  return out;
}

void bench_offline(const BenchOfflineOptions& o) {
  const KvDType kv_dtype = o.kv_dtype;
  const size_t kv_bytes = o.kv_memory.empty() ? 0 : unwrap(parse_bytes(o.kv_memory));
  auto par = ParallelSession::start(o.parallel, o.runtime);
  if (par && par->worker()) return par->run_worker(o.model, o.runtime);
  Runtime rt(o.runtime);
  auto model = load_model(o.model, o.runtime, par.get());
  std::optional<Tokenizer> tok;
  std::vector<std::vector<int32_t>> prompts;
  if (!o.prompts_file.empty()) {
    tok = load_tokenizer_if_present(o.model);
    if (!tok) fail(o.model + ": no tokenizer.json (--prompts needs one to tokenize the prompts)");
    prompts = read_prompts(o.prompts_file, *tok);
  } else {
    std::mt19937_64 rng(o.seed);
    std::uniform_int_distribution<int32_t> d(0, int32_t(model->config().vocab_size - 1));
    for (int64_t i = 0; i < o.requests; ++i) {
      std::vector<int32_t> p(size_t(o.prompt_len));
      for (auto& id : p) id = d(rng);
      prompts.push_back(std::move(p));
    }
  }

  EngineOptions eo;
  eo.kv_memory_bytes = kv_bytes;
  eo.kv_dtype = kv_dtype;
  eo.max_running = o.concurrency;
  eo.max_step_tokens = o.max_step_tokens;
  plan_kv_pool_budget(*model, eo);  // no --kv-memory: the planner's budget for this machine
  // The speculative settings first: the runner's logits rows depend on them.
  if (o.speculative.method != "none" && !tok) tok = load_tokenizer_if_present(o.model);
  const size_t target_block_bytes = PagedKvCache::block_bytes_for(model->config(), eo.block_size, kv_dtype);
  auto drafter = make_speculative(o.speculative, o.runtime, rt, *model, tok ? &*tok : nullptr, target_block_bytes, eo);
  auto runner = make_engine_runner(rt, *model, eo);
  plan_batch_limit(*runner, eo);
  const size_t block_bytes = runner->kv_block_bytes(eo.block_size, kv_dtype);

  auto engine = unwrap(Engine::create(std::move(runner), tok ? &*tok : nullptr, eo, std::move(drafter)));
  std::vector<std::vector<int32_t>> run_prompts;
  for (int64_t i = 0; i < o.requests; ++i) run_prompts.push_back(prompts[size_t(i) % prompts.size()]);
  OfflineRunOptions ro;
  ro.concurrency = o.concurrency;
  ro.max_new_tokens = o.output_len;
  auto run = run_offline_load(*engine, run_prompts, ro);
  engine->shutdown(/*cancel_in_flight=*/true);
  if (!run.is_ok()) fail(run.status().message());
  const OfflineRunStats& st = *run;
  const EngineMetrics& m = st.metrics;
  const std::vector<double>& ttft = st.ttft_s;
  const std::vector<double>& e2e = st.e2e_s;
  const int64_t prompt_tokens = st.prompt_tokens;
  const double wall = st.wall_s;
  const int64_t rss = peak_rss_bytes();
  nlohmann::ordered_json j;
  j["model"] = o.model;
  j["threads"] = rt.pool.size();
  j["requests"] = o.requests;
  j["concurrency"] = o.concurrency;
  j["prompt_len"] = o.prompts_file.empty() ? o.prompt_len : -1;
  j["output_len"] = o.output_len;
  j["kv_dtype"] = kv_dtype_name(kv_dtype);
  j["kv_block_bytes"] = int64_t(block_bytes);
  j["kv_blocks_total"] = m.kv_blocks_total;
  j["kv_budget_bytes"] = int64_t(block_bytes) * m.kv_blocks_total;
  j["weights_bytes"] = int64_t(model->store().total_bytes());
  j["wall_s"] = wall;
  j["prompt_tokens"] = prompt_tokens;
  j["output_tokens"] = st.output_tokens;
  j["prompt_tokens_per_s"] = double(prompt_tokens) / wall;
  j["output_tokens_per_s"] = double(st.output_tokens) / wall;
  j["requests_per_s"] = double(o.requests) / wall;
  j["decode_tokens_per_s"] = st.decode_tokens_per_s();
  for (double p : {50.0, 90.0, 99.0}) {
    const std::string s = std::to_string(int(p));
    j["ttft_ms_p" + s] = percentile_ms(ttft, p);
    j["itl_ms_p" + s] = percentile_ms(st.itl_s, p);
    j["e2e_ms_p" + s] = percentile_ms(e2e, p);
  }
  j["preemptions"] = m.preempted_total;
  j["prefix_cache_hit_rate"] = m.prefix_cache_hit_rate;
  if (eo.speculative.enabled()) {
    j["speculative"] = speculative_method_name(eo.speculative.method);
    j["spec_max_batch_rows"] = eo.speculative.max_batch_rows;
    j["spec_draft_tokens"] = m.spec_draft_tokens;
    j["spec_accepted_tokens"] = m.spec_accepted_tokens;
    j["spec_acceptance_rate"] = m.spec_draft_tokens ? double(m.spec_accepted_tokens) / double(m.spec_draft_tokens) : 0.0;
    j["spec_mean_accepted_length"] = m.spec_verify_steps ? double(m.spec_emitted_tokens) / double(m.spec_verify_steps) : 0.0;
  }
  j["peak_rss_bytes"] = rss;
  if (o.json_out) {
    std::printf("%s\n", j.dump().c_str());
    return;
  }
  auto ms = [&](const char* k) { return j[k].get<double>(); };
  std::printf("model %s | %d threads | %lld requests, %lld in flight | output %lld tokens each | kv %s, %lld blocks "
              "(%.1f MiB)\n",
              o.model.c_str(), rt.pool.size(), (long long)o.requests, (long long)o.concurrency,
              (long long)o.output_len, kv_dtype_name(kv_dtype), (long long)m.kv_blocks_total,
              double(block_bytes) * double(m.kv_blocks_total) / (1 << 20));
  std::printf("wall %.2f s | prompt %.1f tok/s | output %.1f tok/s | %.2f requests/s | decode phase %.1f tok/s\n", wall,
              ms("prompt_tokens_per_s"), ms("output_tokens_per_s"), ms("requests_per_s"), ms("decode_tokens_per_s"));
  std::printf("TTFT ms  p50 %.1f  p90 %.1f  p99 %.1f\n", ms("ttft_ms_p50"), ms("ttft_ms_p90"), ms("ttft_ms_p99"));
  std::printf("ITL ms   p50 %.1f  p90 %.1f  p99 %.1f\n", ms("itl_ms_p50"), ms("itl_ms_p90"), ms("itl_ms_p99"));
  std::printf("e2e ms   p50 %.1f  p90 %.1f  p99 %.1f\n", ms("e2e_ms_p50"), ms("e2e_ms_p90"), ms("e2e_ms_p99"));
  std::printf("preemptions %lld | prefix-cache hit rate %.1f%% | peak RSS %.1f MiB (weights %.1f MiB)\n",
              (long long)m.preempted_total, 100 * m.prefix_cache_hit_rate, double(rss) / (1 << 20),
              double(model->store().total_bytes()) / (1 << 20));
  if (eo.speculative.enabled()) {
    std::printf("speculative %s | drafted %lld | accepted %lld (%.1f%%) | mean accepted length %.2f tokens per verify step\n",
                j["speculative"].get<std::string>().c_str(), (long long)m.spec_draft_tokens,
                (long long)m.spec_accepted_tokens, 100 * j["spec_acceptance_rate"].get<double>(),
                j["spec_mean_accepted_length"].get<double>());
  }
}

}  // namespace

void register_bench_offline(CLI::App& app) {
  CLI::App* bench = bench_group(app);
  auto o = std::make_shared<BenchOfflineOptions>();
  auto* cmd = bench->add_subcommand("offline", "throughput and latency of the in-process engine (no HTTP)");
  const auto positive = CLI::Range(int64_t(1), int64_t(1) << 24);
  add_model_option(*cmd, o->model);
  cmd->add_option("--requests", o->requests, "requests in all")->check(positive);
  cmd->add_option("--concurrency", o->concurrency, "requests in flight at most")->check(CLI::Range(int64_t(1), int64_t(4096)));
  cmd->add_option("--prompt-len", o->prompt_len, "random prompt length in tokens")->check(positive);
  cmd->add_option("--output-len", o->output_len, "tokens generated per request (EOS ignored)")->check(positive);
  cmd->add_option("--prompts", o->prompts_file, "JSONL file of {\"prompt\": \"...\"} lines (used in turn)");
  cmd->add_option("--kv-memory", o->kv_memory, "KV cache budget, e.g. 2GiB (default: the planner's for this machine)");
  add_kv_dtype_option(*cmd, o->kv_dtype);
  cmd->add_option("--max-step-tokens", o->max_step_tokens, "tokens per engine step (decodes + prompt chunks)")
      ->check(CLI::Range(int64_t(1), int64_t(1) << 16));
  cmd->add_option("--seed", o->seed, "seed of the random prompts");
  cmd->add_flag("--json", o->json_out, "one JSON object on stdout");
  add_speculative_options(*cmd, o->speculative);
  o->runtime.cuda_capable = true;  // the engine runs on CudaModelRunner with --device cuda
  o->runtime.add_to(*cmd);
  o->parallel.add_to(*cmd);
  cmd->callback([o] { bench_offline(*o); });
}

}  // namespace tern::cli
