// The HTTP front of a running `tern serve` under abuse (issue 14), over raw sockets. Start the server with
// --test-fake-engine so the figures are the front's, not model compute.
//   bench_serve_http --port P --slow N [--mode idle|head|body] [--trickle-s 10] [--probes 40] [--hold-s 0]
//       Probes with no slow clients (baseline), then opens N connections that never finish their request
//       (idle: connect only; head: a request line and one header line, then one more header byte every
//       --trickle-s; body: a whole head with Content-Length 100000, then one body byte every --trickle-s)
//       and probes again while they are open; with --hold-s, keeps probing until that long after the
//       opening. A probe is GET /health or a 4-token POST /v1/completions on a new connection. Reported:
//       answered / timed out (--probe-timeout-s, default 30), latency p50 / p99 / max, and how many slow
//       connections the server had closed or answered by the end.
//   bench_serve_http --port P --pid PID --flood-lines 3200000
//       One connection sends a head of that many header lines, stopping when the server answers or closes;
//       reported: the server's VmRSS before, its peak (sampled every 20 ms), and 2 s after.
//   bench_serve_http --port P --cut 100
//       100 streams of 2,000 tokens, each hung up after its second event, all at once; reported: how long
//       until /metrics shows 0 KV blocks used and 0 running (sampled every 5 ms).
//   bench_serve_http --port P --pid PID --burst 2000
//       2,000 connections each send one 32-token completion at once; reported: the statuses, the server's
//       peak VmRSS over its RSS before, the RSS after, and whether /health answers afterwards.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include "bench_common.h"

namespace {

using tern::bench::arg_value;
using tern::bench::now_s;
using tern::bench::rss_kib;

int g_port = 0;
std::string g_model = "docs-llama-28m";

int connect_to() {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return -1;
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(uint16_t(g_port));
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0) {
    close(fd);
    return -1;
  }
  return fd;
}

bool send_all(int fd, const std::string& s) {
  for (size_t off = 0; off < s.size();) {
    const ssize_t n = send(fd, s.data() + off, s.size() - off, MSG_NOSIGNAL);
    if (n <= 0) return false;
    off += size_t(n);
  }
  return true;
}

// Reads until the server closes or `timeout_s` passes; false on timeout.
bool read_all(int fd, std::string& got, double timeout_s) {
  const double t0 = now_s();
  char buf[8192];
  for (;;) {
    const double left = timeout_s - (now_s() - t0);
    if (left <= 0) return false;
    pollfd p{fd, POLLIN, 0};
    if (poll(&p, 1, int(left * 1000) + 1) <= 0) continue;
    const ssize_t n = recv(fd, buf, sizeof(buf), 0);
    if (n <= 0) return true;
    got.append(buf, size_t(n));
  }
}

std::string post(const std::string& path, const std::string& body) {
  return "POST " + path + " HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nContent-Type: application/json\r\n"
         "Content-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body;
}
const std::string kHealth = "GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n";

std::string get_metrics() {
  const int fd = connect_to();
  std::string got;
  if (fd >= 0 && send_all(fd, "GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")) read_all(fd, got, 30);
  if (fd >= 0) close(fd);
  return got;
}
double metric(const std::string& text, const std::string& name) {
  const size_t at = text.find("\n" + name + " ");
  return at == std::string::npos ? -1 : std::atof(text.c_str() + at + name.size() + 2);
}

// Samples a process's RSS every 20 ms while alive; peak() is the largest seen.
class RssSampler {
 public:
  explicit RssSampler(int pid) : pid_(pid), peak_(rss_kib(pid)), t_([this] {
    while (!stop_) {
      peak_ = std::max<int64_t>(peak_, rss_kib(pid_));
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
  }) {}
  ~RssSampler() { finish(); }
  int64_t finish() {
    stop_ = true;
    if (t_.joinable()) t_.join();
    return peak_;
  }

 private:
  int pid_;
  std::atomic<int64_t> peak_;
  std::atomic<bool> stop_{false};
  std::thread t_;
};

// --- slow clients ---
struct Probes {
  int answered = 0, failed = 0;
  std::vector<double> ms;
  void print(const char* what) {
    std::sort(ms.begin(), ms.end());
    auto pct = [&](double q) { return ms.empty() ? 0.0 : ms[std::min(ms.size() - 1, size_t(double(ms.size()) * q))]; };
    std::printf("%-32s answered %4d  timed out %3d  p50 %8.2f ms  p99 %8.2f ms  max %8.2f ms\n", what, answered, failed,
                pct(0.5), pct(0.99), ms.empty() ? 0.0 : ms.back());
    std::fflush(stdout);
  }
};

// Even i: GET /health into `health`; odd i: a 4-token completion into `gen`.
void probe(Probes& health, Probes& gen, int i, double timeout_s) {
  Probes& p = i % 2 ? gen : health;
  const std::string req = i % 2 ? post("/v1/completions", R"({"model":")" + g_model + R"(","prompt":"Hello","max_tokens":4})")
                                : kHealth;
  const double t0 = now_s();
  const int fd = connect_to();
  std::string got;
  const bool ok = fd >= 0 && send_all(fd, req) && read_all(fd, got, timeout_s) && got.rfind("HTTP/1.1 200", 0) == 0;
  if (fd >= 0) close(fd);
  if (ok) {
    p.answered++;
    p.ms.push_back((now_s() - t0) * 1e3);
  } else {
    p.failed++;
  }
}

int slow_clients(int n, const std::string& mode, double trickle_s, int probes, double hold_s, double timeout_s) {
  Probes base_health, base_gen;
  for (int i = 0; i < probes; ++i) probe(base_health, base_gen, i, timeout_s);
  base_health.print("/health, no slow clients");
  base_gen.print("completion, no slow clients");
  std::vector<int> fds;
  const std::string head = "POST /v1/completions HTTP/1.1\r\nHost: 127.0.0.1\r\n";
  for (int i = 0; i < n; ++i) {
    const int fd = connect_to();
    if (fd < 0) break;
    if (mode == "head") send_all(fd, head + "X-Slow: a");
    if (mode == "body") send_all(fd, head + "Content-Type: application/json\r\nContent-Length: 100000\r\n\r\n{");
    fds.push_back(fd);
  }
  const double t0 = now_s();
  std::printf("opened %zu of %d slow connections (%s)\n", fds.size(), n, mode.c_str());
  std::atomic<bool> stop{false};
  std::thread trickler([&] {
    while (!stop) {
      for (int i = 0; i < int(trickle_s * 10) && !stop; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(100));
      if (mode == "idle" || stop) continue;
      for (int fd : fds) send(fd, "a", 1, MSG_NOSIGNAL | MSG_DONTWAIT);
    }
  });
  Probes health, gen;
  for (int i = 0; i < probes || now_s() - t0 < hold_s; ++i) probe(health, gen, i, timeout_s);
  const std::string with = " with " + std::to_string(fds.size()) + " " + mode;
  health.print(("/health," + with).c_str());
  gen.print(("completion," + with).c_str());
  int gone = 0;
  for (int fd : fds) {
    pollfd p{fd, POLLIN, 0};
    if (poll(&p, 1, 0) > 0) gone++;  // EOF, an error, or an answer (408): the server let go of it
  }
  std::printf("after %.1f s the server had closed or answered %d of %zu slow connections\n", now_s() - t0, gone, fds.size());
  stop = true;
  trickler.join();
  for (int fd : fds) close(fd);
  return 0;
}

// --- header flood ---
int flood(int pid, int64_t lines) {
  const int64_t rss0 = rss_kib(pid);
  RssSampler sampler(pid);
  const double t0 = now_s();
  const int fd = connect_to();
  int64_t sent = 0;
  std::string answer;
  if (fd >= 0 && send_all(fd, "GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n")) {
    std::string batch;
    for (int64_t i = 0; i < lines;) {
      batch.clear();
      for (int k = 0; k < 1000 && i < lines; ++k, ++i) batch += "X-Flood-" + std::to_string(i) + ": v\r\n";
      if (!send_all(fd, batch)) break;
      sent = i;
      pollfd p{fd, POLLIN, 0};
      if (poll(&p, 1, 0) > 0) break;  // the server answered (or closed): stop
    }
    if (sent == lines) send_all(fd, "\r\n");
    read_all(fd, answer, 30);
  }
  const double t1 = now_s();
  if (fd >= 0) close(fd);
  std::this_thread::sleep_for(std::chrono::seconds(2));
  const int64_t peak = sampler.finish();
  std::printf("header flood: %lld of %lld lines sent in %.1f s; answer: %s\n", (long long)sent, (long long)lines, t1 - t0,
              answer.empty() ? "(none)" : answer.substr(0, answer.find('\r')).c_str());
  std::printf("server VmRSS: before %.1f MB, peak %.1f MB, 2 s after %.1f MB\n", rss0 / 1024.0, peak / 1024.0,
              rss_kib(pid) / 1024.0);
  return 0;
}

// --- cut streams ---
int cut_streams(int n) {
  const std::string body = R"({"model":")" + g_model + R"(","prompt":"Tell me a story","max_tokens":2000,"ignore_eos":true,"stream":true})";
  std::vector<int> fds(size_t(n), -1);
  std::vector<std::thread> ts;
  std::atomic<int> streaming{0};
  for (int i = 0; i < n; ++i) {
    ts.emplace_back([&, i] {
      const int fd = connect_to();
      if (fd < 0 || !send_all(fd, post("/v1/completions", body))) return;
      std::string seen;
      char buf[4096];
      size_t events = 0;
      while (events < 2) {
        const ssize_t k = recv(fd, buf, sizeof(buf), 0);
        if (k <= 0) break;
        seen.append(buf, size_t(k));
        events = 0;
        for (size_t at = 0; (at = seen.find("data: {", at)) != std::string::npos; at += 7) events++;
      }
      fds[size_t(i)] = fd;
      if (events >= 2) streaming++;
    });
  }
  for (auto& t : ts) t.join();
  const std::string before = get_metrics();
  const double t0 = now_s();
  for (int fd : fds) {
    if (fd >= 0) close(fd);
  }
  double used = -1, running = -1;
  while (now_s() - t0 < 30) {
    const std::string m = get_metrics();
    used = metric(m, "tern_kv_blocks_used");
    running = metric(m, "tern_requests_running") + metric(m, "tern_requests_waiting");
    if (used == 0 && running == 0) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  std::printf("%d of %d streams running (%.0f KV blocks used) hung up; KV blocks used %.0f, running %.0f after %.3f s\n",
              streaming.load(), n, metric(before, "tern_kv_blocks_used"), used, running, now_s() - t0);
  return 0;
}

// --- burst ---
int burst(int pid, int n) {
  const int64_t rss0 = pid > 0 ? rss_kib(pid) : -1;
  RssSampler sampler(pid);
  const std::string req = post("/v1/completions", R"({"model":")" + g_model + R"(","prompt":"Hi","max_tokens":32})");
  std::vector<int> fds;
  const double t0 = now_s();
  for (int i = 0; i < n; ++i) {
    const int fd = connect_to();
    if (fd < 0) break;
    send_all(fd, req);
    fds.push_back(fd);
  }
  std::map<std::string, int> statuses;
  for (int fd : fds) {
    std::string got;
    read_all(fd, got, 120);
    close(fd);
    statuses[got.size() >= 12 ? got.substr(9, 3) : "none"]++;
  }
  const double t1 = now_s();
  std::this_thread::sleep_for(std::chrono::seconds(2));
  const int64_t peak = sampler.finish();
  std::printf("%zu of %d requests sent in one burst, all answered in %.1f s:", fds.size(), n, t1 - t0);
  for (const auto& [s, k] : statuses) std::printf("  %s x %d", s.c_str(), k);
  const int fd = connect_to();
  std::string health;
  if (fd >= 0 && send_all(fd, kHealth)) read_all(fd, health, 30);
  if (fd >= 0) close(fd);
  std::printf("\nserver VmRSS: before %.1f MB, peak %.1f MB (+%.1f), 2 s after %.1f MB; /health afterwards: %s\n",
              rss0 / 1024.0, peak / 1024.0, (peak - rss0) / 1024.0, rss_kib(pid) / 1024.0,
              health.substr(0, std::min<size_t>(health.find('\r'), 15)).c_str());
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  g_port = std::stoi(arg_value(argc, argv, "--port", "0"));
  g_model = arg_value(argc, argv, "--model", g_model);
  if (g_port <= 0) {
    std::fprintf(stderr, "usage: bench_serve_http --port P (--slow N | --flood-lines N | --cut N | --burst N) ... (see the file)\n");
    return 1;
  }
  rlimit r{};
  if (getrlimit(RLIMIT_NOFILE, &r) == 0) {
    r.rlim_cur = r.rlim_max;
    setrlimit(RLIMIT_NOFILE, &r);
  }
  const int pid = std::stoi(arg_value(argc, argv, "--pid", "0"));
  if (const int64_t lines = std::stoll(arg_value(argc, argv, "--flood-lines", "0")); lines > 0) return flood(pid, lines);
  if (const int n = std::stoi(arg_value(argc, argv, "--cut", "0")); n > 0) return cut_streams(n);
  if (const int n = std::stoi(arg_value(argc, argv, "--burst", "0")); n > 0) return burst(pid, n);
  return slow_clients(std::stoi(arg_value(argc, argv, "--slow", "1000")), arg_value(argc, argv, "--mode", "head"),
                      std::stod(arg_value(argc, argv, "--trickle-s", "10")), std::stoi(arg_value(argc, argv, "--probes", "40")),
                      std::stod(arg_value(argc, argv, "--hold-s", "0")), std::stod(arg_value(argc, argv, "--probe-timeout-s", "30")));
}
