// tern bench offline: N requests through the in-process Engine (no HTTP) with at most C in flight,
// closed loop (a new request is added as soon as one finishes). EOS is ignored, so every request
// makes exactly --output-len tokens. Reports throughput, TTFT / ITL / e2e percentiles, the decode
// phase alone, preemptions and the process's peak RSS (VmHWM).
#include <algorithm>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <cstdio>
#include <fstream>
#include <mutex>
#include <nlohmann/json.hpp>
#include <random>
#include <string>
#include <vector>

#include "cli_common.h"
#include "core/mapped_file.h"
#include "engine/cpu_model_runner.h"
#include "engine/engine.h"

namespace tern::cli {

namespace {

using Clock = std::chrono::steady_clock;

struct BenchOfflineOptions {
  RuntimeOptions runtime;
  std::string model;
  int64_t requests = 64;
  int64_t concurrency = 16;
  int64_t prompt_len = 128;
  int64_t output_len = 128;
  std::string prompts_file;
  std::string kv_memory;           // "" = the engine's default budget
  std::string kv_dtype = "bf16";
  int64_t max_step_tokens = 512;
  uint64_t seed = 1;
  bool json_out = false;
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

double percentile_ms(std::vector<double> v_s, double p) {
  if (v_s.empty()) return 0;
  std::sort(v_s.begin(), v_s.end());
  // Nearest rank: the smallest value with at least p% of the observations at or below it.
  const size_t rank = size_t(std::ceil(p / 100.0 * double(v_s.size())));
  return 1e3 * v_s[std::clamp<size_t>(rank, 1, v_s.size()) - 1];
}

struct PerRequest {
  Clock::time_point added, first, last;
  bool have_first = false;
  int64_t tokens = 0;
  EngineFinish finish = EngineFinish::kNone;
  std::string error;
};

// What the callbacks (engine thread) and the submitting thread share, under mu.
struct Shared {
  std::mutex mu;
  std::condition_variable cv;
  std::vector<PerRequest> req;     // [requests], indexed by submission order
  std::vector<double> itl_s;       // one entry per token after a request's first
  int64_t in_flight = 0, done = 0, pending_first = 0, output_tokens = 0;
  // Decode phase: the time between consecutive engine events while no request waits for its first
  // token (so no prefill runs), and the tokens those events carried.
  Clock::time_point last_event;
  bool have_event = false, clean = false;
  double decode_s = 0;
  int64_t decode_tokens = 0;
};

void on_output(Shared& sh, size_t i, const EngineOutput& out) {
  const auto now = Clock::now();
  std::lock_guard lk(sh.mu);
  PerRequest& r = sh.req[i];
  const int64_t n = int64_t(out.tokens.size());
  int64_t after_first = n;
  if (n > 0) {
    if (!r.have_first) {
      r.have_first = true;
      r.first = now;
      --sh.pending_first;
      after_first = n - 1;
    } else {
      // Tokens that arrive together share the gap since the previous event of this request.
      for (int64_t k = 0; k < n; ++k) sh.itl_s.push_back(std::chrono::duration<double>(now - r.last).count() / double(n));
    }
    r.last = now;
    r.tokens += n;
    sh.output_tokens += n;
  }
  if (sh.have_event && sh.clean) {
    sh.decode_s += std::chrono::duration<double>(now - sh.last_event).count();
    sh.decode_tokens += after_first;
  }
  sh.last_event = now;
  sh.have_event = true;
  sh.clean = sh.pending_first == 0;
  if (out.finish != EngineFinish::kNone) {
    if (!r.have_first) --sh.pending_first;
    r.finish = out.finish;
    r.error = out.error;
    --sh.in_flight;
    ++sh.done;
    sh.cv.notify_all();
  }
}

void bench_offline(const BenchOfflineOptions& o) {
  const KvDType kv_dtype = unwrap(parse_kv_dtype(o.kv_dtype));
  const size_t kv_bytes = o.kv_memory.empty() ? 0 : unwrap(parse_bytes(o.kv_memory));
  Runtime rt(o.runtime);
  auto model = unwrap(Model::load(o.model, o.runtime.load_options()));
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
  auto runner = std::make_unique<CpuModelRunner>(*model, rt.ctx, eo.max_step_tokens, eo.max_running);
  const size_t block_bytes = runner->kv_block_bytes(eo.block_size, kv_dtype);

  Shared sh;  // outlives the engine: the engine is shut down before this function returns
  sh.req.resize(size_t(o.requests));
  auto engine = unwrap(Engine::create(std::move(runner), tok ? &*tok : nullptr, eo));
  const auto t0 = Clock::now();
  int64_t prompt_tokens = 0;
  for (int64_t i = 0; i < o.requests; ++i) {
    {
      std::unique_lock lk(sh.mu);
      sh.cv.wait(lk, [&] { return sh.in_flight < o.concurrency; });
      ++sh.in_flight;
      ++sh.pending_first;
      sh.clean = false;
      sh.req[size_t(i)].added = Clock::now();
    }
    EngineRequest r;
    r.prompt = prompts[size_t(i) % prompts.size()];
    prompt_tokens += int64_t(r.prompt.size());
    r.max_new_tokens = o.output_len;
    r.ignore_eos = true;
    r.sampling.temperature = 0;
    auto id = engine->add(std::move(r), [&sh, i](RequestId, const EngineOutput& out) { on_output(sh, size_t(i), out); });
    if (!id.is_ok()) {
      engine->shutdown(/*cancel_in_flight=*/true);
      fail("request " + std::to_string(i) + ": " + id.status().message());
    }
  }
  {
    std::unique_lock lk(sh.mu);
    sh.cv.wait(lk, [&] { return sh.done == o.requests; });
  }
  const auto t1 = Clock::now();
  const EngineMetrics m = engine->metrics();
  engine->shutdown(/*cancel_in_flight=*/false);

  std::vector<double> ttft, e2e;
  for (const PerRequest& r : sh.req) {
    if (r.finish == EngineFinish::kError) fail("a request failed: " + r.error);
    if (r.have_first) ttft.push_back(std::chrono::duration<double>(r.first - r.added).count());
    e2e.push_back(std::chrono::duration<double>((r.have_first ? r.last : r.added) - r.added).count());
  }
  const double wall = std::chrono::duration<double>(t1 - t0).count();
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
  j["output_tokens"] = sh.output_tokens;
  j["prompt_tokens_per_s"] = double(prompt_tokens) / wall;
  j["output_tokens_per_s"] = double(sh.output_tokens) / wall;
  j["requests_per_s"] = double(o.requests) / wall;
  j["decode_tokens_per_s"] = sh.decode_s > 0 ? double(sh.decode_tokens) / sh.decode_s : 0.0;
  for (double p : {50.0, 90.0, 99.0}) {
    const std::string s = std::to_string(int(p));
    j["ttft_ms_p" + s] = percentile_ms(ttft, p);
    j["itl_ms_p" + s] = percentile_ms(sh.itl_s, p);
    j["e2e_ms_p" + s] = percentile_ms(e2e, p);
  }
  j["preemptions"] = m.preempted_total;
  j["prefix_cache_hit_rate"] = m.prefix_cache_hit_rate;
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
}

}  // namespace

void register_bench_offline(CLI::App& app) {
  CLI::App* bench = nullptr;
  try {
    bench = app.get_subcommand("bench");
  } catch (const CLI::OptionNotFound&) {
    bench = app.add_subcommand("bench", "benchmarks");
    bench->require_subcommand(1);
  }
  auto o = std::make_shared<BenchOfflineOptions>();
  auto* cmd = bench->add_subcommand("offline", "throughput and latency of the in-process engine (no HTTP)");
  const auto positive = CLI::Range(int64_t(1), int64_t(1) << 24);
  cmd->add_option("-m,--model", o->model, "model directory (Hugging Face layout) or .gguf file")->required();
  cmd->add_option("--requests", o->requests, "requests in all")->check(positive);
  cmd->add_option("--concurrency", o->concurrency, "requests in flight at most")->check(CLI::Range(int64_t(1), int64_t(4096)));
  cmd->add_option("--prompt-len", o->prompt_len, "random prompt length in tokens")->check(positive);
  cmd->add_option("--output-len", o->output_len, "tokens generated per request (EOS ignored)")->check(positive);
  cmd->add_option("--prompts", o->prompts_file, "JSONL file of {\"prompt\": \"...\"} lines (used in turn)");
  cmd->add_option("--kv-memory", o->kv_memory, "KV cache budget, e.g. 2GiB (default: the engine's for this machine)");
  cmd->add_option("--kv-dtype", o->kv_dtype, "KV cache storage: bf16 (default), f32, int8 or fp8");
  cmd->add_option("--max-step-tokens", o->max_step_tokens, "tokens per engine step (decodes + prompt chunks)")
      ->check(CLI::Range(int64_t(1), int64_t(1) << 16));
  cmd->add_option("--seed", o->seed, "seed of the random prompts");
  cmd->add_flag("--json", o->json_out, "one JSON object on stdout");
  o->runtime.add_to(*cmd);
  cmd->callback([o] { bench_offline(*o); });
}

}  // namespace tern::cli
