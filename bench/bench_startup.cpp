// Start-up to the first token (issue 20 item 5), phase by phase, every run in a fresh process (fork)
// on a warm page cache:
//   pool      the thread pool
//   parse     a GGUF file's header and metadata, parsed once for the weights and the tokenizer
//   open      config.json, mmap, header parsing (Model::load's LoadReport)
//   cache     the packed-weight cache: key, map, hash verification (model/packed_cache.h; "used (stamp)":
//             its verification stamp matched and the payload was not hashed)
//   bind      the architecture's builder (quantized layers repacked unless the cache held them)
//   derive    the LM head rounded to int8 / int4 at load (unless the cache held it)
//   write     writing the packed-weight cache (the first load of a checkpoint only)
//   prefault  prefault_weights (model/prefault.h): the pages the first forward reads mapped in, while the tokenizer
//             builds (--no-prefault: left to the first forward's page faults)
//   tokenizer waiting for the tokenizer (tokenizer.json, or a GGUF file's vocabulary) after the load: it is
//             built on a thread of its own while the weights load, as tern run does (--serial-tokenizer:
//             after the load, the whole build in this phase); tokenizer_own = the build's own time
//   kv        the KV cache for the prompt
//   forward   the prompt's forward pass, the LM head and the argmax: the first token
// and the resident memory at the first token (VmRSS) and at its peak (VmHWM).
//
// Usage: bench_startup MODEL_DIR|FILE.gguf [--threads 2] [--runs 5] [--prompt 8] [--lm-head auto]
//                      [--weight-cache auto|off] [--serial-tokenizer] [--no-prefault]
//                      [--json]
//        bench_startup --exec "COMMAND" [--runs 5]
//          whole-process wall time and peak RSS (wait4's ru_maxrss) of a shell command, e.g.
//          "build/tern run -m M -p 'The kernel scheduler decides' -n 1 --temp 0 -t 2" or llama.cpp's
//          llama-cli; each run's load average (1 min) is printed beside it.
#include <fmt/format.h>
#include <fcntl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <future>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "bench_common.h"
#include "core/cpu_features.h"
#include "core/exec_context.h"
#include "formats/gguf/gguf_file.h"
#include "kv/sequence_kv_cache.h"
#include "model/decoder.h"
#include "model/model.h"
#include "model/prefault.h"
#include "runtime/sampler.h"
#include "text/model_tokenizer.h"
#include "text/tokenizer/tokenizer.h"

using namespace tern;
using Clock = std::chrono::steady_clock;

namespace {

double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

int64_t status_kib(const char* field) {
  std::ifstream f("/proc/self/status");
  std::string line;
  const size_t n = std::strlen(field);
  while (std::getline(f, line))
    if (line.compare(0, n, field) == 0) return std::stoll(line.substr(n + 1));
  return -1;
}

double load_average() {
  std::ifstream f("/proc/loadavg");
  double l = -1;
  f >> l;
  return l;
}

struct Options {
  std::string model;
  int threads = 2, prompt = 8;
  bool serial_tokenizer = false, no_prefault = false;
  ModelLoadOptions load;
};

// One start-up in this (fresh) process; the figures as JSON, or an error.
nlohmann::json start_once(const Options& o) {
  nlohmann::json r;
  const auto t0 = Clock::now();
  auto t = Clock::now();
  auto lap = [&](const char* phase) {
    r[phase] = seconds_since(t);
    t = Clock::now();
  };
  const CpuFeatures cpu = CpuFeatures::detect();
  ThreadPool pool(o.threads);
  ExecContext ctx(pool, cpu, ActivationPrecision::kF32);
  lap("pool");
  // The GGUF file parsed once, for the weights and the tokenizer both (as tern run does).
  std::shared_ptr<const GgufFile> gguf;
  if (is_gguf_file(o.model)) {
    auto g = GgufFile::open(o.model);
    if (!g.is_ok()) return {{"error", g.status().message()}};
    gguf = std::make_shared<const GgufFile>(std::move(g).value());
  }
  lap("parse");
  // The tokenizer on a thread of its own while the weights load (text/model_tokenizer.h), unless
  // --serial-tokenizer: then after them, as before issue 20 item 5's second pass.
  double tokenizer_own = 0;
  auto build_tokenizer = [&o, &gguf, &tokenizer_own] {
    const auto t0 = Clock::now();
    auto r = load_model_tokenizer(o.model, gguf.get());
    tokenizer_own = seconds_since(t0);
    return r;
  };
  std::future<Result<std::optional<Tokenizer>>> tokenizer;
  if (!o.serial_tokenizer) tokenizer = std::async(std::launch::async, build_tokenizer);
  LoadReport report;
  ModelLoadOptions lo = o.load;
  lo.pool = &pool, lo.report = &report, lo.gguf = gguf;
  auto loaded = Model::load(o.model, lo);
  if (!loaded.is_ok()) return {{"error", loaded.status().message()}};
  const double load_s = seconds_since(t);
  r["open"] = report.open_s, r["cache"] = report.cache_read_s, r["bind"] = report.bind_s;
  r["derive"] = report.derive_s, r["write"] = report.cache_write_s;
  r["cache_state"] = report.cache != "used" ? report.cache : report.cache_hashed ? "used (hashed)" : "used (stamp)";
  r["load_other"] = load_s - report.open_s - report.cache_read_s - report.bind_s - report.derive_s - report.cache_write_s;
  t = Clock::now();
  const Model& m = **loaded;
  if (!o.no_prefault) prefault_weights(m);
  lap("prefault");
  // A model without a tokenizer (a GGUF file without tokenizer metadata) is timed without one.
  auto tok = o.serial_tokenizer ? build_tokenizer() : tokenizer.get();
  r["has_tokenizer"] = tok.is_ok() && tok->has_value();
  r["tokenizer_own"] = tokenizer_own;
  lap("tokenizer");
  SequenceKvCache kv(m.config(), o.prompt + 1);
  Decoder dec(m);
  std::vector<float> hidden(size_t(m.config().hidden_size)), logits(size_t(m.config().vocab_size));
  std::vector<int32_t> ids(size_t(o.prompt));
  for (int i = 0; i < o.prompt; ++i) ids[size_t(i)] = int32_t((1000 + 37 * i) % std::min<int64_t>(m.config().vocab_size, 32000));
  lap("kv");
  auto st = dec.forward(ctx, kv, ids.data(), o.prompt, 1, hidden.data());
  if (!st.is_ok()) return {{"error", st.message()}};
  dec.logits(ctx, hidden.data(), 1, logits.data());
  r["token"] = argmax(logits.data(), m.config().vocab_size);
  lap("forward");
  r["total"] = seconds_since(t0);
  r["rss_mib"] = double(status_kib("VmRSS:")) / 1024;
  r["hwm_mib"] = double(status_kib("VmHWM:")) / 1024;
  return r;
}

// Runs fn in a forked child and returns what it wrote (one line).
template <typename Fn>
std::string in_child(Fn fn) {
  int fds[2];
  if (pipe(fds) != 0) return "";
  const pid_t pid = fork();
  if (pid == 0) {
    close(fds[0]);
    const std::string out = fn() + "\n";
    (void)!write(fds[1], out.data(), out.size());
    _exit(0);
  }
  close(fds[1]);
  std::string out;
  char buf[4096];
  for (ssize_t n; (n = read(fds[0], buf, sizeof buf)) > 0;) out.append(buf, size_t(n));
  close(fds[0]);
  int status = 0;
  waitpid(pid, &status, 0);
  return out;
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0 : v[v.size() / 2];
}

int run_exec(const std::string& cmd, int runs) {
  std::vector<double> walls;
  for (int i = 0; i < runs; ++i) {
    const double load = load_average();
    const auto t0 = Clock::now();
    const pid_t pid = fork();
    if (pid == 0) {
      const int null = open("/dev/null", O_WRONLY);
      dup2(null, 1), dup2(null, 2);
      execl("/bin/sh", "sh", "-c", cmd.c_str(), static_cast<char*>(nullptr));
      _exit(127);
    }
    int status = 0;
    struct rusage ru {};
    wait4(pid, &status, 0, &ru);
    const double wall = seconds_since(t0);
    walls.push_back(wall);
    fmt::print("run {} | wall {:.3f} s | max RSS {:.1f} MiB | exit {} | load {:.2f}\n", i, wall, ru.ru_maxrss / 1024.0,
               WIFEXITED(status) ? WEXITSTATUS(status) : -1, load);
  }
  fmt::print("median wall {:.3f} s over {} runs: {}\n", median(walls), runs, cmd);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  const int runs = std::stoi(bench::arg_value(argc, argv, "--runs", "5"));
  if (const std::string cmd = bench::arg_value(argc, argv, "--exec", ""); !cmd.empty()) return run_exec(cmd, runs);
  if (argc < 2 || argv[1][0] == '-') {
    fmt::print(stderr, "usage: bench_startup MODEL [--threads 2] [--runs 5] [--prompt 8] [--lm-head auto] "
                       "[--weight-cache auto|off] [--serial-tokenizer] [--no-prefault] [--json] | bench_startup --exec CMD [--runs 5]\n");
    return 2;
  }
  Options o;
  o.model = argv[1];
  o.threads = std::stoi(bench::arg_value(argc, argv, "--threads", "2"));
  o.prompt = std::stoi(bench::arg_value(argc, argv, "--prompt", "8"));
  auto head = parse_lm_head_format(bench::arg_value(argc, argv, "--lm-head", "auto"));
  auto cache = parse_weight_cache_mode(bench::arg_value(argc, argv, "--weight-cache", "auto"));
  if (!head.is_ok() || !cache.is_ok()) {
    fmt::print(stderr, "bench_startup: {}\n", !head.is_ok() ? head.status().message() : cache.status().message());
    return 2;
  }
  o.load.lm_head = *head, o.load.weight_cache = *cache;
  o.serial_tokenizer = bench::has_flag(argc, argv, "--serial-tokenizer");
  o.no_prefault = bench::has_flag(argc, argv, "--no-prefault");
  const bool json = bench::has_flag(argc, argv, "--json");
  static const char* kPhases[] = {"pool", "parse", "open", "cache", "bind", "derive", "write", "load_other", "prefault", "tokenizer", "kv", "forward", "tokenizer_own"};
  std::vector<nlohmann::json> rows;
  for (int i = 0; i < runs; ++i) {
    const double load = load_average();
    nlohmann::json r = nlohmann::json::parse(in_child([&] { return start_once(o).dump(); }), nullptr, false);
    if (r.is_discarded() || r.contains("error")) {
      fmt::print(stderr, "bench_startup: {}\n", r.is_discarded() ? "the child process failed" : r["error"].get<std::string>());
      return 1;
    }
    r["load_average"] = load;
    rows.push_back(r);
    if (json) continue;
    std::string phases;
    for (const char* p : kPhases) phases += fmt::format(" {} {:.3f}", p, r[p].get<double>());
    fmt::print("run {} | total {:.3f} s |{} | RSS {:.0f} MiB, peak {:.0f} MiB | cache {} | load {:.2f}\n", i,
               r["total"].get<double>(), phases, r["rss_mib"].get<double>(), r["hwm_mib"].get<double>(),
               r["cache_state"].get<std::string>(), load);
  }
  if (json) {
    fmt::print("{}\n", nlohmann::json(rows).dump(2));
    return 0;
  }
  std::vector<double> totals;
  for (const auto& r : rows) totals.push_back(r["total"].get<double>());
  fmt::print("{} | {} threads | median start to first token {:.3f} s over {} runs | cpu {}\n", o.model, o.threads,
             median(totals), runs, CpuFeatures::detect().describe());
  return 0;
}
