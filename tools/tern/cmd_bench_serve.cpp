// tern bench serve: load generator for any OpenAI-compatible server (tern, vLLM, llama.cpp server, ...).
// For each concurrency level it sends --requests streaming completions (prompt = --prompt-tokens token ids,
// --output-tokens tokens with ignore_eos), optionally paced at --rate requests/s (Poisson arrivals), and
// reports time to first token, inter-token latency and end-to-end latency p50/p90/p99 plus throughput,
// as a table, --json, and an SVG of latency vs throughput across the sweep (--plot).
#include <httplib.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <mutex>
#include <nlohmann/json.hpp>
#include <random>
#include <sstream>
#include <thread>

#include "bench_serve_plot.h"
#include "cli_common.h"

namespace tern::cli {

namespace {

using json = nlohmann::json;
using Clock = std::chrono::steady_clock;

struct BenchServeOptions {
  std::string url = "http://127.0.0.1:8080";
  std::string model;  // "": the first of GET /v1/models
  std::string api_key;
  std::string concurrency = "1,4,16,64";
  int64_t prompt_tokens = 256, output_tokens = 128;
  std::string requests;  // per level: one number for all, or one per level; "": max(4 x concurrency, 8)
  double rate = 0;       // requests/s; 0: as fast as the concurrency allows
  int64_t burst = 0;     // > 0: arrivals in bursts of this many (Poisson at --rate within), --burst-gap apart
  double burst_gap_s = 0;
  int64_t prompt_tokens_max = 0;       // > prompt_tokens: lengths drawn uniformly in [prompt_tokens, this]
  double goodput_ttft_ms = 0, goodput_tpot_ms = 0;  // > 0: count the requests that meet the targets
  int64_t vocab_lo = 1000, vocab_hi = 5000;  // prompt ids drawn from here (ids every tokenizer of note has)
  uint64_t seed = 1;
  bool json_out = false;
  std::string plot;
};

struct RequestSample {
  bool ok = false;
  int status = 0;  // HTTP status (0: no answer)
  std::string error;
  double ttft_s = 0, e2e_s = 0;
  std::vector<double> itl_s;
  int64_t output_tokens = 0;
};

double ms_since(Clock::time_point t0, Clock::time_point t) { return std::chrono::duration<double>(t - t0).count(); }

double percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  const double at = p / 100.0 * double(v.size() - 1);
  const size_t lo = size_t(at);
  const size_t hi = std::min(lo + 1, v.size() - 1);
  return v[lo] + (v[hi] - v[lo]) * (at - double(lo));
}

httplib::Headers auth_headers(const BenchServeOptions& o) {
  httplib::Headers h;
  if (!o.api_key.empty()) h.emplace("Authorization", "Bearer " + o.api_key);
  return h;
}

// One streaming completion; the SSE body is parsed as it arrives.
RequestSample run_one(httplib::Client& cli, const BenchServeOptions& o, const std::string& body) {
  RequestSample s;
  const auto t0 = Clock::now();
  Clock::time_point last;
  std::string buf;
  int64_t usage_tokens = -1, chunks = 0;
  httplib::Request req;
  req.method = "POST";
  req.path = "/v1/completions";
  req.headers = auth_headers(o);
  req.headers.emplace("Accept", "text/event-stream");
  req.body = body;
  req.set_header("Content-Type", "application/json");
  req.content_receiver = [&](const char* data, size_t n, uint64_t, uint64_t) {
    buf.append(data, n);
    size_t end;
    while ((end = buf.find("\n\n")) != std::string::npos) {
      const std::string event = buf.substr(0, end);
      buf.erase(0, end + 2);
      if (event.rfind("data: ", 0) != 0) continue;  // comments (": keep-alive") and other fields
      const std::string payload = event.substr(6);
      if (payload == "[DONE]") continue;
      const json j = json::parse(payload, nullptr, false);
      if (j.is_discarded()) continue;
      if (j.contains("error")) s.error = j["error"].value("message", "error event");
      if (j.contains("usage") && j["usage"].is_object()) usage_tokens = j["usage"].value("completion_tokens", int64_t(-1));
      if (!j.contains("choices") || j["choices"].empty()) continue;
      const json& c = j["choices"][0];
      const bool has_text = c.contains("text") ? !c["text"].get<std::string>().empty()
                                               : c.contains("delta") && c["delta"].value("content", "") != "";
      if (!has_text) continue;
      const auto now = Clock::now();
      if (chunks == 0) {
        s.ttft_s = ms_since(t0, now);
      } else {
        s.itl_s.push_back(ms_since(last, now));
      }
      last = now;
      chunks++;
    }
    return true;
  };
  auto res = cli.send(req);
  if (!res && chunks == 0 && buf.empty()) {
    // Nothing came back: the kept-alive connection was closed by the server between requests (llama-server does
    // this after a stream). Send once more on a new connection, as HTTP clients do; the time lost stays in TTFT.
    res = cli.send(req);
  }
  s.e2e_s = ms_since(t0, Clock::now());
  if (!res) {
    s.error = "HTTP error: " + httplib::to_string(res.error());
  } else if (s.status = res->status; res->status != 200) {
    s.error = "HTTP " + std::to_string(res->status) + ": " + res->body.substr(0, 200);
  } else if (s.error.empty() && chunks > 0) {
    s.ok = true;
  } else if (s.error.empty()) {
    s.error = "no tokens streamed";
  }
  s.output_tokens = usage_tokens >= 0 ? usage_tokens : chunks;
  return s;
}

LevelResult run_level(const BenchServeOptions& o, int concurrency, int64_t n) {
  std::mt19937_64 rng(o.seed + uint64_t(concurrency));
  std::vector<std::string> bodies;
  std::vector<double> start_at;  // seconds after t0 (rate pacing)
  double t = 0;
  std::exponential_distribution<double> gap(o.rate > 0 ? o.rate : 1.0);
  for (int64_t i = 0; i < n; ++i) {
    const int64_t len = o.prompt_tokens_max > o.prompt_tokens
                            ? o.prompt_tokens + int64_t(rng() % uint64_t(o.prompt_tokens_max - o.prompt_tokens + 1))
                            : o.prompt_tokens;
    std::vector<int32_t> ids(static_cast<size_t>(len));
    for (auto& id : ids) id = int32_t(o.vocab_lo + int64_t(rng() % uint64_t(o.vocab_hi - o.vocab_lo)));
    json b = {{"model", o.model},   {"prompt", ids},     {"max_tokens", o.output_tokens}, {"stream", true},
              {"ignore_eos", true}, {"temperature", 0.0}, {"stream_options", {{"include_usage", true}}}};
    bodies.push_back(b.dump());
    start_at.push_back(t);
    if (o.rate > 0) t += gap(rng);
    if (o.burst > 0 && (i + 1) % o.burst == 0) t += o.burst_gap_s;
  }
  std::vector<RequestSample> samples(static_cast<size_t>(n));
  std::atomic<int64_t> next{0};
  const auto t0 = Clock::now();
  std::vector<std::thread> workers;
  for (int w = 0; w < concurrency; ++w) {
    workers.emplace_back([&] {
      httplib::Client cli(o.url);
      cli.set_read_timeout(3600, 0);
      cli.set_write_timeout(60, 0);
      cli.set_keep_alive(true);
      for (int64_t i; (i = next++) < n;) {
        const auto due = t0 + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(start_at[size_t(i)]));
        std::this_thread::sleep_until(due);
        samples[size_t(i)] = run_one(cli, o, bodies[size_t(i)]);
      }
    });
  }
  for (auto& w : workers) w.join();
  const double wall = ms_since(t0, Clock::now());

  LevelResult r;
  r.concurrency = concurrency;
  std::vector<double> ttft, itl, e2e;
  int64_t tokens = 0;
  r.has_goodput = o.goodput_ttft_ms > 0 || o.goodput_tpot_ms > 0;
  for (const auto& s : samples) {
    r.refused += s.status == 429 ? 1 : 0;
    if (s.ok && r.has_goodput) {
      const double tpot_ms = s.output_tokens > 1 ? (s.e2e_s - s.ttft_s) * 1e3 / double(s.output_tokens - 1) : 0;
      const bool ttft_ok = o.goodput_ttft_ms <= 0 || s.ttft_s * 1e3 <= o.goodput_ttft_ms;
      const bool tpot_ok = o.goodput_tpot_ms <= 0 || tpot_ms <= o.goodput_tpot_ms;
      r.good += ttft_ok && tpot_ok ? 1 : 0;
    }
    if (!s.ok) {
      r.failed++;
      if (r.first_error.empty()) r.first_error = s.error;
      continue;
    }
    r.completed++;
    ttft.push_back(s.ttft_s * 1e3);
    e2e.push_back(s.e2e_s * 1e3);
    for (double x : s.itl_s) itl.push_back(x * 1e3);
    tokens += s.output_tokens;
  }
  r.wall_s = wall;
  r.output_tokens = tokens;
  r.output_tok_per_s = wall > 0 ? double(tokens) / wall : 0;
  r.requests_per_s = wall > 0 ? double(r.completed) / wall : 0;
  r.goodput_per_s = wall > 0 ? double(r.good) / wall : 0;
  for (double p : {50.0, 90.0, 99.0}) {
    r.ttft_ms.push_back(percentile(ttft, p));
    r.itl_ms.push_back(percentile(itl, p));
    r.e2e_ms.push_back(percentile(e2e, p));
  }
  return r;
}

std::string first_model(const BenchServeOptions& o) {
  httplib::Client cli(o.url);
  cli.set_read_timeout(30, 0);
  auto res = cli.Get("/v1/models", auth_headers(o));
  if (!res) fail("cannot reach " + o.url + ": " + httplib::to_string(res.error()));
  const json j = json::parse(res->body, nullptr, false);
  if (res->status != 200 || j.is_discarded() || !j.contains("data") || !j["data"].is_array() || j["data"].empty())
    fail(o.url + "/v1/models gave HTTP " + std::to_string(res->status) + ": pass --model");
  return j["data"][0].value("id", "");
}

void bench_serve(BenchServeOptions o) {
  std::vector<int> levels;
  std::stringstream ss(o.concurrency);
  for (std::string item; std::getline(ss, item, ',');) {
    try {
      const int c = std::stoi(item);
      if (c < 1 || c > 4096) throw std::out_of_range("concurrency");
      levels.push_back(c);
    } catch (const std::exception&) {
      fail("--concurrency: '" + item + "' is not a number in [1, 4096]");
    }
  }
  if (levels.empty()) fail("--concurrency: give at least one level");
  // --requests: one count for every level, or one per level (a long sweep need not run 4 x 64 at the top).
  std::vector<int64_t> counts;
  std::stringstream rs(o.requests);
  for (std::string item; std::getline(rs, item, ',');) {
    try {
      size_t used = 0;
      const long long n = std::stoll(item, &used);
      if (used != item.size() || n < 1 || n > (int64_t(1) << 24)) throw std::out_of_range("requests");
      counts.push_back(n);
    } catch (const std::exception&) {
      fail("--requests: '" + item + "' is not a number in [1, 16777216]");
    }
  }
  if (counts.size() > 1 && counts.size() != levels.size())
    fail("--requests: give one count, or one per concurrency level (" + std::to_string(levels.size()) + ")");
  if (o.model.empty()) o.model = first_model(o);

  std::vector<LevelResult> results;
  for (size_t i = 0; i < levels.size(); ++i) {
    const int c = levels[i];
    const int64_t n = counts.empty() ? std::max<int64_t>(8, 4 * c) : counts[counts.size() == 1 ? 0 : i];
    if (!o.json_out) std::fprintf(stderr, "[tern] bench serve: concurrency %d, %lld requests ...\n", c, (long long)n);
    results.push_back(run_level(o, c, n));
  }
  json out = json::array();
  for (const auto& r : results) out.push_back(level_json(r));
  if (o.json_out) {
    std::printf("%s\n", json({{"url", o.url}, {"model", o.model}, {"prompt_tokens", o.prompt_tokens},
                              {"output_tokens", o.output_tokens}, {"rate", o.rate}, {"levels", out}})
                            .dump(2)
                            .c_str());
  } else {
    std::printf("%s", level_table(results).c_str());
  }
  if (!o.plot.empty()) {
    std::ofstream f(o.plot);
    f << latency_throughput_svg(results, o.model, o.prompt_tokens, o.output_tokens);
    if (!f) fail("cannot write " + o.plot);
  }
  for (const auto& r : results) {
    if (r.completed == 0) fail("no request completed at concurrency " + std::to_string(r.concurrency) + ": " + r.first_error);
  }
}

}  // namespace

void register_bench_serve(CLI::App& app) {
  CLI::App* bench = bench_group(app);
  auto o = std::make_shared<BenchServeOptions>();
  auto* cmd = bench->add_subcommand("serve", "load-test an OpenAI-compatible server (TTFT, ITL, e2e, throughput)");
  cmd->add_option("--url", o->url, "server base URL");
  cmd->add_option("--model", o->model, "model name (default: the first of /v1/models)");
  cmd->add_option("--api-key", o->api_key, "sent as Authorization: Bearer <key>");
  cmd->add_option("--concurrency", o->concurrency, "comma-separated concurrency levels");
  cmd->add_option("--prompt-tokens", o->prompt_tokens, "prompt length in tokens")->check(CLI::Range(int64_t(1), int64_t(1) << 20));
  cmd->add_option("--output-tokens", o->output_tokens, "tokens to generate")->check(CLI::Range(int64_t(1), int64_t(1) << 20));
  cmd->add_option("--requests", o->requests,
                  "requests per level: one count, or one per level (e.g. 4,8,16,64); default max(8, 4 x concurrency)");
  cmd->add_option("--rate", o->rate, "requests per second, Poisson arrivals (default: closed loop)")->check(CLI::Range(0.0, 1e6));
  cmd->add_option("--seed", o->seed, "seed of prompts and arrivals");
  cmd->add_option("--prompt-tokens-max", o->prompt_tokens_max,
                  "draw each prompt's length uniformly in [--prompt-tokens, this]")
      ->check(CLI::Range(int64_t(1), int64_t(1) << 20));
  cmd->add_option("--burst", o->burst, "arrivals in bursts of this many requests (Poisson at --rate within a burst)")
      ->check(CLI::Range(int64_t(1), int64_t(1) << 20));
  cmd->add_option("--burst-gap", o->burst_gap_s, "seconds of quiet between bursts")->check(CLI::Range(0.0, 3600.0));
  cmd->add_option("--goodput-ttft-ms", o->goodput_ttft_ms, "goodput: a request must get its first token within this")
      ->check(CLI::Range(0.0, 3.6e6));
  cmd->add_option("--goodput-tpot-ms", o->goodput_tpot_ms,
                  "goodput: and its later tokens within this on average (refused requests never count)")
      ->check(CLI::Range(0.0, 3.6e6));
  cmd->add_flag("--json", o->json_out, "one JSON object on stdout");
  cmd->add_option("--plot", o->plot, "write an SVG of latency vs throughput across the sweep");
  cmd->callback([o] { bench_serve(*o); });
}

}  // namespace tern::cli
