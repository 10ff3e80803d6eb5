// tern router figures (docs/benchmarks.md, docs/router.md). It starts its own `tern serve` replicas and
// `tern router` on loopback and drives them:
//   bench_router overhead TERN [--router-cpus L --load-cpus L] [--new-connections] [--rounds N] [--router-tern T]
//                                     latency added by the router, p50 / p99 at concurrency 1 and 64, and the
//                                     router's CPU time per request (fake-engine replica, 1-token answers:
//                                     router vs the same replica direct, interleaved rounds)
//   bench_router affinity TERN MODEL [serve args] [--router-X V] [--think-s S] [--rounds N]: 32 conversations
//     x 6 turns (each resends the history, streamed) over 3 real replicas: prefix-cache hit rate (the replicas'
//     /metrics) and TTFT, affinity vs round robin (fresh replicas each run; rounds alternate the policies)
//   bench_router failover TERN        3 fake replicas under load, one SIGKILLed (then one SIGSTOPped): the
//                                     time until the router has taken it out (no request goes there after)
#include <sched.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <httplib.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <regex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

namespace {

using json = nlohmann::json;
using Clock = std::chrono::steady_clock;

double since_s(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

std::string slurp(const std::string& path) {
  std::ifstream f(path);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

// `tern <args>` with its log in a temporary file; the port from its "on http://host:PORT" line.
struct Proc {
  pid_t pid = -1;
  int port = 0;
  std::string log;
  // cpus: a taskset list ("1", "0-1") the process is pinned to, or "" for any.
  Proc(const std::string& tern, const std::string& args, const std::string& cpus = "") {
    char tmpl[] = "/tmp/bench_router_XXXXXX";
    const int fd = mkstemp(tmpl);
    if (fd >= 0) close(fd);
    log = tmpl;
    const std::string pin = cpus.empty() ? "" : "taskset -c " + cpus + " ";  // taskset execs: the pid stays
    const std::string cmd = "exec " + pin + "'" + tern + "' " + args + " >/dev/null 2>'" + log + "'";
    pid = fork();
    if (pid == 0) {
      execl("/bin/sh", "sh", "-c", cmd.c_str(), static_cast<char*>(nullptr));
      _exit(127);
    }
    const std::regex re(R"(on http://[^ ]+:(\d+))");
    for (int i = 0; i < 1200 && port == 0; ++i) {
      std::smatch m;
      const std::string text = slurp(log);
      if (std::regex_search(text, m, re)) port = std::stoi(m[1]);
      if (port == 0) std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    if (port == 0) {
      std::fprintf(stderr, "bench_router: '%s' did not start:\n%s\n", args.c_str(), slurp(log).c_str());
      std::exit(1);
    }
  }
  ~Proc() {
    if (pid > 0) {
      kill(pid, SIGKILL);
      waitpid(pid, nullptr, 0);
    }
    std::remove(log.c_str());
  }
  std::string url() const { return "http://127.0.0.1:" + std::to_string(port); }
};

// The 1-minute load average (/proc/loadavg): figures from a busy machine are upper bounds.
std::string load_average() {
  std::istringstream in(slurp("/proc/loadavg"));
  std::string one;
  in >> one;
  return one;
}

double pct(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v[std::min(v.size() - 1, size_t(p * double(v.size() - 1) + 0.5))];
}

double metric(const std::string& text, const std::string& name) {
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind(name + " ", 0) == 0) return std::stod(line.substr(name.size() + 1));
  }
  return -1;
}

// The sum of a labelled series over its labels.
double metric_sum(const std::string& text, const std::string& name) {
  std::istringstream in(text);
  std::string line;
  double sum = 0;
  while (std::getline(in, line)) {
    if (line.rfind(name + "{", 0) == 0) sum += std::stod(line.substr(line.rfind(' ') + 1));
  }
  return sum;
}

std::string get_metrics(int port) {
  httplib::Client c("127.0.0.1", port);
  auto r = c.Get("/metrics");
  return r ? r->body : "";
}

// ---- overhead ----

// CPU time a process has run, all its threads (ns, /proc/PID/task/*/schedstat: finer than the stat ticks).
double cpu_ns(pid_t pid) {
  double sum = 0;
  const std::string dir = "/proc/" + std::to_string(pid) + "/task";
  for (const auto& e : std::filesystem::directory_iterator(dir, std::filesystem::directory_options::skip_permission_denied)) {
    std::istringstream in(slurp(e.path().string() + "/schedstat"));
    double ns = 0;
    if (in >> ns) sum += ns;
  }
  return sum;
}

// keep_alive: one connection per client, as client libraries keep (httplib's own default is a new
// connection per request, which the router's figures before 2026-12-07 05:00 were taken with).
std::vector<double> latencies(int port, int concurrency, int per_thread, bool keep_alive = true) {
  const std::string body = R"({"model":"docs-llama-28m","max_tokens":1,"temperature":0,"prompt":"The router adds"})";
  std::vector<std::vector<double>> per(static_cast<size_t>(concurrency));
  std::vector<std::thread> ts;
  for (int t = 0; t < concurrency; ++t) {
    ts.emplace_back([&, t] {
      httplib::Client c("127.0.0.1", port);
      c.set_keep_alive(keep_alive);
      c.set_tcp_nodelay(true);  // httplib writes head and body apart: Nagle + delayed ACK would add 40 ms
      c.set_read_timeout(60, 0);
      for (int i = 0; i < per_thread; ++i) {
        const auto t0 = Clock::now();
        auto r = c.Post("/v1/completions", body, "application/json");
        if (!r || r->status != 200) {
          std::fprintf(stderr, "bench_router: a request failed\n");
          std::exit(1);
        }
        per[size_t(t)].push_back(since_s(t0) * 1e3);
      }
    });
  }
  for (auto& t : ts) t.join();
  std::vector<double> all;
  for (auto& v : per) all.insert(all.end(), v.begin(), v.end());
  return all;
}

struct OverheadOptions {
  std::string router_cpus, load_cpus;  // taskset lists: the router's, the replica's and the clients'
  std::string router_tern;             // another tern binary for the router (a baseline build), or ""
  bool keep_alive = true;
  int rounds = 4;
};

// Pins this process (the clients' threads, created after) to a taskset list such as "0" or "0-1".
bool pin_self(const std::string& cpus) {
  cpu_set_t set;
  CPU_ZERO(&set);
  std::istringstream in(cpus);
  std::string part;
  while (std::getline(in, part, ',')) {
    const size_t dash = part.find('-');
    const int lo = std::stoi(part.substr(0, dash)), hi = dash == std::string::npos ? lo : std::stoi(part.substr(dash + 1));
    for (int c = lo; c <= hi; ++c) CPU_SET(c, &set);
  }
  return sched_setaffinity(0, sizeof set, &set) == 0;
}

void overhead(const std::string& tern, const OverheadOptions& o) {
  if (!o.load_cpus.empty() && !pin_self(o.load_cpus)) {
    std::fprintf(stderr, "bench_router: cannot pin to CPUs %s\n", o.load_cpus.c_str());
    std::exit(1);
  }
  Proc replica(tern, "serve -m '" + std::string(TERN_SHARED_DIR) +
               "/models/docs-llama-28m' --test-fake-engine --test-fake-steps-per-s 100000 --port 0 --max-queue 1024",
               o.load_cpus);
  Proc router(o.router_tern.empty() ? tern : o.router_tern, "router --port 0 --replica " + replica.url(), o.router_cpus);
  std::printf("CPUs: router %s, replica and clients %s; %s clients\n", o.router_cpus.empty() ? "any" : o.router_cpus.c_str(),
              o.load_cpus.empty() ? "any" : o.load_cpus.c_str(), o.keep_alive ? "keep-alive" : "connection-per-request");
  std::printf("| concurrency | direct p50 / p99 (ms) | via router p50 / p99 (ms) | added p50 / p99 (ms) | samples each "
              "| router CPU / request (us) | replica CPU / request (us) | load |\n"
              "|---|---|---|---|---|---|---|---|\n");
  for (int c : {1, 64}) {
    const int per_round = c == 1 ? 125 : 10;  // requests per client and round
    std::vector<double> direct, routed;
    latencies(replica.port, c, 20, o.keep_alive);  // warm up connections and the engine
    latencies(router.port, c, 20, o.keep_alive);
    double router_ns = 0, replica_direct_ns = 0;
    for (int round = 0; round < o.rounds; ++round) {  // interleaved, so drift of the machine hits both alike
      const double p0 = cpu_ns(replica.pid);
      auto d = latencies(replica.port, c, per_round, o.keep_alive);
      const double r0 = cpu_ns(router.pid), p1 = cpu_ns(replica.pid);
      auto r = latencies(router.port, c, per_round, o.keep_alive);
      router_ns += cpu_ns(router.pid) - r0;
      replica_direct_ns += p1 - p0;
      direct.insert(direct.end(), d.begin(), d.end());
      routed.insert(routed.end(), r.begin(), r.end());
    }
    std::printf("| %d | %.3f / %.3f | %.3f / %.3f | %.3f / %.3f | %zu | %.1f | %.1f | %s |\n", c, pct(direct, 0.5),
                pct(direct, 0.99), pct(routed, 0.5), pct(routed, 0.99), pct(routed, 0.5) - pct(direct, 0.5),
                pct(routed, 0.99) - pct(direct, 0.99), direct.size(), router_ns / 1e3 / double(routed.size()),
                replica_direct_ns / 1e3 / double(direct.size()), load_average().c_str());
    std::fflush(stdout);
  }
}

// ---- affinity ----

struct AffinityResult {
  double hit_rate = 0, mean_ttft_ms = 0, p50_ttft_ms = 0, p90_ttft_ms = 0, wall_s = 0, prompt_tokens = 0,
         computed_tokens = 0, spills = 0;
  std::string per_replica;  // requests each replica served
  int errors = 0;
};

struct AffinityWorkload {
  int conversations = 32, turns = 6;
  double think_s = 0;  // between an answer and the conversation's next turn (a user reading and typing)
};

AffinityResult affinity_run(const std::string& tern, const std::string& model, const std::string& policy,
                            const AffinityWorkload& w, const std::string& text, const std::string& replica_args,
                            const std::string& router_args) {
  const int conversations = w.conversations, turns = w.turns;
  std::vector<std::unique_ptr<Proc>> replicas;
  std::string args = "router --port 0 --policy " + policy + router_args;
  for (int i = 0; i < 3; ++i) {
    replicas.push_back(std::make_unique<Proc>(tern, "serve -m '" + model + "' --port 0 " + replica_args));
    args += " --replica " + replicas.back()->url();
  }
  Proc router(tern, args);
  std::vector<double> ttft;
  std::mutex mu;
  std::atomic<int> errors{0};
  const auto t0 = Clock::now();
  std::vector<std::thread> ts;
  for (int c = 0; c < conversations; ++c) {
    ts.emplace_back([&, c] {
      httplib::Client cli("127.0.0.1", router.port);
      cli.set_read_timeout(600, 0);
      json messages = json::array({{{"role", "system"}, {"content", "You answer questions about the tern documentation."}}});
      // With a think time the conversations start spread over one think time, as users arrive.
      std::this_thread::sleep_for(std::chrono::duration<double>(w.think_s * c / conversations));
      for (int t = 0; t < turns; ++t) {
        if (t > 0) std::this_thread::sleep_for(std::chrono::duration<double>(w.think_s));
        const size_t at = (size_t(c * turns + t) * 211) % (text.size() - 400);
        messages.push_back({{"role", "user"}, {"content", text.substr(at, 240)}});
        const json body = {{"model", "docs-llama-28m"}, {"messages", messages}, {"max_tokens", 16},
                           {"temperature", 0}, {"stream", true}};
        std::string buf, answer;
        double first = -1;
        const auto s0 = Clock::now();
        httplib::Request req;
        req.method = "POST";
        req.path = "/v1/chat/completions";
        req.body = body.dump();
        req.set_header("Content-Type", "application/json");
        req.content_receiver = [&](const char* data, size_t n, uint64_t, uint64_t) {
          buf.append(data, n);
          for (size_t end; (end = buf.find("\n\n")) != std::string::npos; buf.erase(0, end + 2)) {
            const json j = json::parse(buf.substr(6, end - 6), nullptr, false);
            if (j.is_discarded() || !j.contains("choices") || j["choices"].empty()) continue;
            const std::string piece = j["choices"][0]["delta"].value("content", "");
            if (!piece.empty() && first < 0) first = since_s(s0) * 1e3;
            answer += piece;
          }
          return true;
        };
        auto r = cli.send(req);
        if (!r || r->status != 200 || first < 0) {
          errors++;
        } else {
          std::lock_guard<std::mutex> lock(mu);
          ttft.push_back(first);
        }
        messages.push_back({{"role", "assistant"}, {"content", answer}});
      }
    });
  }
  for (auto& t : ts) t.join();
  AffinityResult res;
  res.wall_s = since_s(t0);
  double cached = 0, prompt = 0;
  for (const auto& rp : replicas) {
    const std::string m = get_metrics(rp->port);
    const double p = metric(m, "tern_prompt_tokens_total"), h = metric(m, "tern_prefix_cache_hit_rate");
    prompt += p;
    cached += p * h;
  }
  res.hit_rate = prompt > 0 ? cached / prompt : 0;
  res.prompt_tokens = prompt;
  res.computed_tokens = prompt - cached;
  res.spills = metric_sum(get_metrics(router.port), "tern_router_replica_affinity_spills_total");
  double sum = 0;
  for (double v : ttft) sum += v;
  res.mean_ttft_ms = ttft.empty() ? 0 : sum / double(ttft.size());
  res.p50_ttft_ms = pct(ttft, 0.5);
  res.p90_ttft_ms = pct(ttft, 0.9);
  const std::string rm = get_metrics(router.port);
  for (const auto& rp : replicas) {
    res.per_replica += (res.per_replica.empty() ? "" : " / ") +
                       std::to_string(int(metric(rm, "tern_router_replica_requests_total{replica=\"" + rp->url() + "\"}")));
  }
  res.errors = errors;
  return res;
}

void affinity(const std::string& tern, const std::string& model, const AffinityWorkload& w, int rounds,
              const std::string& replica_args, const std::string& router_args) {
  const std::string text = slurp(std::string(TERN_SHARED_DIR) + "/data/docs-val.txt");
  if (text.size() < 4096) {
    std::fprintf(stderr, "bench_router: cannot read %s/data/docs-val.txt\n", TERN_SHARED_DIR);
    std::exit(1);
  }
  std::printf("%d conversations x %d turns, think time %.1f s, replicas:%s, router:%s\n", w.conversations, w.turns,
              w.think_s, replica_args.c_str(), router_args.c_str());
  std::printf("| policy | prefix-cache hit rate | prompt tokens computed / sent | mean TTFT (ms) | p50 / p90 TTFT (ms) "
              "| wall (s) | requests per replica | affinity spills | errors | load |\n"
              "|---|---|---|---|---|---|---|---|---|---|\n");
  // Alternating rounds, so drift of a shared machine's load hits both policies alike.
  for (int round = 0; round < rounds; ++round) {
    for (const char* policy : {"round-robin", "affinity"}) {
      const AffinityResult r = affinity_run(tern, model, policy, w, text, replica_args, router_args);
      std::printf("| %s | %.3f | %.0f / %.0f | %.1f | %.1f / %.1f | %.1f | %s | %.0f | %d | %s |\n", policy, r.hit_rate,
                  r.computed_tokens, r.prompt_tokens, r.mean_ttft_ms, r.p50_ttft_ms, r.p90_ttft_ms, r.wall_s,
                  r.per_replica.c_str(), r.spills, r.errors, load_average().c_str());
      std::fflush(stdout);
    }
  }
}

// ---- failover ----

void failover_case(const std::string& tern, int sig, const char* name) {
  const std::string m = std::string(TERN_SHARED_DIR) + "/models/docs-llama-28m";
  std::vector<std::unique_ptr<Proc>> replicas;
  std::string args = "router --port 0";
  for (int i = 0; i < 3; ++i) {
    replicas.push_back(std::make_unique<Proc>(tern, "serve -m '" + m + "' --test-fake-engine --port 0"));
    args += " --replica " + replicas.back()->url();
  }
  Proc router(tern, args);
  std::atomic<bool> stop{false};
  std::atomic<int> failed{0}, done{0};
  std::vector<std::thread> ts;
  for (int t = 0; t < 16; ++t) {
    ts.emplace_back([&, t] {
      httplib::Client c("127.0.0.1", router.port);
      c.set_read_timeout(600, 0);
      for (int i = 0; !stop; ++i) {
        const std::string body = R"({"model":"docs-llama-28m","max_tokens":8,"prompt":"load )" + std::to_string(t) + "-" +
                                 std::to_string(i) + "\"}";
        auto r = c.Post("/v1/completions", body, "application/json");
        (r && r->status == 200 ? done : failed)++;
      }
    });
  }
  std::this_thread::sleep_for(std::chrono::seconds(3));
  const std::string victim = replicas[1]->url();
  const std::string up = "tern_router_replica_up{replica=\"" + victim + "\"}";
  const std::string sent = "tern_router_replica_requests_total{replica=\"" + victim + "\"}";
  const auto t0 = Clock::now();
  kill(replicas[1]->pid, sig);
  double out_s = -1;
  while (since_s(t0) < 30) {
    if (metric(get_metrics(router.port), up) == 0) {
      out_s = since_s(t0);
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  const double sent_at_out = metric(get_metrics(router.port), sent);
  std::this_thread::sleep_for(std::chrono::seconds(2));
  const double sent_later = metric(get_metrics(router.port), sent);
  stop = true;
  if (sig == SIGSTOP) kill(replicas[1]->pid, SIGCONT);
  for (auto& t : ts) t.join();
  std::printf("| %s | %.3f | %.0f | %d | %d | %.0f | %s |\n", name, out_s, sent_later - sent_at_out, done.load(), failed.load(),
              metric_sum(get_metrics(router.port), "tern_router_replica_down_total") - 1, load_average().c_str());
  std::fflush(stdout);
}

void failover(const std::string& tern) {
  std::printf("| fault | taken out after (s) | requests sent to it after | requests ok | requests failed "
              "| other replicas taken out | load |\n|---|---|---|---|---|---|---|\n");
  failover_case(tern, SIGKILL, "SIGKILL (process dies)");
  failover_case(tern, SIGSTOP, "SIGSTOP (process hangs)");
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 3) {
    std::fprintf(stderr, "usage: bench_router overhead|failover TERN | bench_router load PORT CONCURRENCY N | bench_router affinity TERN MODEL [serve args] [--router-OPTION V] "
                 "[--think-s S] [--rounds N] [--conversations N] [--turns N]\n");
    return 1;
  }
  signal(SIGPIPE, SIG_IGN);
  const std::string mode = argv[1];
  const std::string tern = argv[2];
  if (mode == "overhead") {
    // [--router-cpus LIST] [--load-cpus LIST] (taskset lists: e.g. the router on core 1, the replica and
    // the clients on core 0, as a router on cores of its own), [--new-connections], [--rounds N] (4),
    // [--router-tern PATH] (the router from another build, e.g. a baseline; the replica stays TERN's).
    OverheadOptions o;
    for (int i = 3; i < argc; ++i) {
      const std::string a = argv[i];
      const bool value = i + 1 < argc;
      if (a == "--router-cpus" && value) o.router_cpus = argv[++i];
      else if (a == "--load-cpus" && value) o.load_cpus = argv[++i];
      else if (a == "--new-connections") o.keep_alive = false;
      else if (a == "--router-tern" && value) o.router_tern = argv[++i];
      else if (a == "--rounds" && value) o.rounds = std::max(1, std::atoi(argv[++i]));
      else {
        std::fprintf(stderr, "bench_router overhead: unknown argument '%s'\n", a.c_str());
        return 1;
      }
    }
    overhead(tern, o);
  } else if (mode == "load" && argc >= 5) {
    // bench_router load PORT CONCURRENCY REQUESTS_PER_CLIENT: the overhead mode's load on any server (to
    // profile one, e.g. `perf record -p` on the router meanwhile); prints p50 / p99.
    const auto v = latencies(std::stoi(argv[2]), std::stoi(argv[3]), std::stoi(argv[4]));
    std::printf("%zu requests: p50 %.3f ms, p99 %.3f ms\n", v.size(), pct(v, 0.5), pct(v, 0.99));
  } else if (mode == "failover") {
    failover(tern);
  } else if (mode == "affinity" && argc >= 4) {
    // Arguments after MODEL go to the replicas; "--router-X V" goes to the router as "--X V"; the
    // bench's own: --think-s S (default 0: every conversation's next turn at once), --rounds N (1),
    // --conversations N (32), --turns N (6).
    std::string extra, router_extra;
    AffinityWorkload w;
    int rounds = 1;
    try {
      for (int i = 4; i < argc; ++i) {
        const std::string a = argv[i];
        const bool value = i + 1 < argc;
        if (a == "--think-s" && value) w.think_s = std::stod(argv[++i]);
        else if (a == "--rounds" && value) rounds = std::stoi(argv[++i]);
        else if (a == "--conversations" && value) w.conversations = std::stoi(argv[++i]);
        else if (a == "--turns" && value) w.turns = std::stoi(argv[++i]);
        else if (a.rfind("--router-", 0) == 0 && value) router_extra += " --" + a.substr(9) + " " + argv[++i];
        else extra += " " + a;
      }
    } catch (const std::exception&) {
      std::fprintf(stderr, "bench_router: --think-s, --rounds, --conversations and --turns take numbers\n");
      return 1;
    }
    affinity(tern, argv[3], w, rounds, extra, router_extra);
  } else {
    std::fprintf(stderr, "bench_router: unknown mode '%s'\n", mode.c_str());
    return 1;
  }
  return 0;
}
