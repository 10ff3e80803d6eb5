// Slow and idle clients against a running `tern serve` (issue 14, item 13), over raw sockets.
//   bench_serve_slowloris --port P [--slow 1000] [--mode idle|head|body] [--trickle-s 10] [--probes 40]
//                         [--probe-timeout-s 30] [--model NAME]
//       Probes first with no slow clients (baseline), then opens --slow connections that never finish
//       their request (idle: connect only; head: a request line and one header line, then one more header
//       byte every --trickle-s; body: a whole head with Content-Length 100000, then one body byte every
//       --trickle-s) and probes again while they are open. A probe is GET /health and a 4-token
//       POST /v1/completions, each on a new connection; reported: answered / timed out, latency p50 / p99,
//       and how many slow connections the server still held at the end.
//   bench_serve_slowloris --port P --pid PID --flood-lines 3200000
//       One connection sends a request head of --flood-lines header lines ("X-Flood-<i>: v"), stopping
//       when the server answers or closes; reported: the server's VmRSS before, its peak (VmHWM growth,
//       sampled), and 2 s after.
// Start the server with --test-fake-engine so the probes measure the HTTP front, not model compute.
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
#include <string>
#include <thread>
#include <vector>

#include "bench_common.h"

namespace {

using tern::bench::arg_value;
using tern::bench::now_s;

int connect_to(int port) {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return -1;
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(uint16_t(port));
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

// One request on a fresh connection (Connection: close); returns the latency in seconds, or -1 when
// no complete answer came within timeout_s.
double probe(int port, const std::string& request, double timeout_s) {
  const double t0 = now_s();
  const int fd = connect_to(port);
  if (fd < 0) return -1;
  bool ok = send_all(fd, request);
  std::string got;
  char buf[8192];
  while (ok) {
    const double left = timeout_s - (now_s() - t0);
    if (left <= 0) {
      ok = false;
      break;
    }
    pollfd p{fd, POLLIN, 0};
    if (poll(&p, 1, int(left * 1000) + 1) <= 0) continue;
    const ssize_t n = recv(fd, buf, sizeof(buf), 0);
    if (n <= 0) break;
    got.append(buf, size_t(n));
  }
  close(fd);
  if (!ok || got.rfind("HTTP/1.1 200", 0) != 0) return -1;
  return now_s() - t0;
}

struct ProbeStats {
  int answered = 0, failed = 0;
  double p50_ms = 0, p99_ms = 0, max_ms = 0;
};

ProbeStats run_probes(int port, const std::string& model, int n, double timeout_s) {
  const std::string body = R"({"model":")" + model + R"(","prompt":"Hello","max_tokens":4})";
  const std::string health = "GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n";
  const std::string post = "POST /v1/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
                           "Content-Type: application/json\r\nContent-Length: " +
                           std::to_string(body.size()) + "\r\n\r\n" + body;
  ProbeStats s;
  std::vector<double> ms;
  for (int i = 0; i < n; ++i) {
    const double t = probe(port, i % 2 ? post : health, timeout_s);
    if (t < 0) {
      s.failed++;
    } else {
      s.answered++;
      ms.push_back(t * 1e3);
    }
  }
  if (!ms.empty()) {
    std::sort(ms.begin(), ms.end());
    s.p50_ms = ms[ms.size() / 2];
    s.p99_ms = ms[std::min(ms.size() - 1, size_t(double(ms.size()) * 0.99))];
    s.max_ms = ms.back();
  }
  return s;
}

void print(const char* what, const ProbeStats& s) {
  std::printf("%-28s answered %3d  timed out %3d  p50 %8.2f ms  p99 %8.2f ms  max %8.2f ms\n", what, s.answered,
              s.failed, s.p50_ms, s.p99_ms, s.max_ms);
  std::fflush(stdout);
}

// Connections the server has closed or answered.
int count_closed(const std::vector<int>& fds) {
  int closed = 0;
  for (int fd : fds) {
    pollfd p{fd, POLLIN, 0};
    if (poll(&p, 1, 0) > 0) closed++;  // EOF, an error, or an answer (e.g. 408): the server gave up on it
  }
  return closed;
}

int64_t status_kib(int pid, const char* key) {
  std::ifstream f("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(f, line)) {
    if (line.rfind(key, 0) == 0) return std::stoll(line.substr(std::string(key).size()));
  }
  return -1;
}

int flood(int port, int pid, int64_t lines) {
  const int64_t rss0 = status_kib(pid, "VmRSS:");
  std::atomic<bool> done{false};
  std::atomic<int64_t> peak{rss0};
  std::thread sampler([&] {
    while (!done) {
      peak = std::max<int64_t>(peak, status_kib(pid, "VmRSS:"));
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
  });
  const double t0 = now_s();
  const int fd = connect_to(port);
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
    char buf[4096];
    pollfd p{fd, POLLIN, 0};
    while (poll(&p, 1, 5000) > 0) {
      const ssize_t n = recv(fd, buf, sizeof(buf), 0);
      if (n <= 0) break;
      answer.append(buf, size_t(n));
    }
  }
  const double t1 = now_s();
  if (fd >= 0) close(fd);
  std::this_thread::sleep_for(std::chrono::seconds(2));
  done = true;
  sampler.join();
  const int64_t rss2 = status_kib(pid, "VmRSS:");
  std::printf("header flood: %lld of %lld lines sent in %.1f s; answer: %s\n", (long long)sent, (long long)lines,
              t1 - t0, answer.empty() ? "(none)" : answer.substr(0, answer.find('\r')).c_str());
  std::printf("server VmRSS: before %.1f MB, peak %.1f MB, 2 s after %.1f MB\n", rss0 / 1024.0, peak / 1024.0,
              rss2 / 1024.0);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  const int port = std::stoi(arg_value(argc, argv, "--port", "0"));
  if (port <= 0) {
    std::fprintf(stderr, "usage: bench_serve_slowloris --port P [--slow N] [--mode idle|head|body] ... (see the file)\n");
    return 1;
  }
  rlimit r{};
  if (getrlimit(RLIMIT_NOFILE, &r) == 0) {
    r.rlim_cur = r.rlim_max;
    setrlimit(RLIMIT_NOFILE, &r);
  }
  const int pid = std::stoi(arg_value(argc, argv, "--pid", "0"));
  const int64_t flood_lines = std::stoll(arg_value(argc, argv, "--flood-lines", "0"));
  if (flood_lines > 0) return flood(port, pid, flood_lines);

  const int slow = std::stoi(arg_value(argc, argv, "--slow", "1000"));
  const std::string mode = arg_value(argc, argv, "--mode", "head");
  const double trickle_s = std::stod(arg_value(argc, argv, "--trickle-s", "10"));
  const int probes = std::stoi(arg_value(argc, argv, "--probes", "40"));
  const double timeout_s = std::stod(arg_value(argc, argv, "--probe-timeout-s", "30"));
  const std::string model = arg_value(argc, argv, "--model", "tern");

  print("no slow clients", run_probes(port, model, probes, timeout_s));

  std::vector<int> fds;
  const std::string head = "POST /v1/completions HTTP/1.1\r\nHost: 127.0.0.1\r\n";
  for (int i = 0; i < slow; ++i) {
    const int fd = connect_to(port);
    if (fd < 0) break;
    if (mode == "head") send_all(fd, head + "X-Slow: a");
    if (mode == "body") send_all(fd, head + "Content-Type: application/json\r\nContent-Length: 100000\r\n\r\n{");
    fds.push_back(fd);
  }
  std::printf("opened %zu of %d slow connections (%s)\n", fds.size(), slow, mode.c_str());
  std::atomic<bool> stop{false};
  std::thread trickler([&] {
    while (!stop) {
      for (int i = 0; i < int(trickle_s * 10) && !stop; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(100));
      if (mode == "idle" || stop) continue;
      for (int fd : fds) send(fd, "a", 1, MSG_NOSIGNAL | MSG_DONTWAIT);
    }
  });
  const double t0 = now_s();
  print(("with " + std::to_string(fds.size()) + " slow (" + mode + ")").c_str(), run_probes(port, model, probes, timeout_s));
  std::printf("after %.1f s the server had closed or answered %d of %zu slow connections\n", now_s() - t0,
              count_closed(fds), fds.size());
  stop = true;
  trickler.join();
  for (int fd : fds) close(fd);
  return 0;
}
