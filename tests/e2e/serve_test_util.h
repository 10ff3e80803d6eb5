// Helpers for the `tern serve` e2e tests: a real server process on 127.0.0.1 (a free port picked by the
// server itself: --port 0, read back from its log), raw HTTP over a socket for malformed requests, and
// the server's /metrics and RSS.
#pragma once

#include <arpa/inet.h>
#include <fcntl.h>
#include <httplib.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <regex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "test_support.h"

namespace tern::test {

inline std::string slurp_file(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

// Waits for child `pid` to end: its exit code (-2 if killed by a signal; pid becomes -1), or -1 if it
// is still running after `timeout_s`.
inline int wait_child_exit(pid_t& pid, double timeout_s) {
  const auto until = std::chrono::steady_clock::now() + std::chrono::duration<double>(timeout_s);
  while (std::chrono::steady_clock::now() < until) {
    int status = 0;
    if (waitpid(pid, &status, WNOHANG) == pid) {
      pid = -1;
      return WIFEXITED(status) ? WEXITSTATUS(status) : -2;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return -1;
}

// Starts `cmd` under /bin/sh and waits (up to `tries` x 50 ms) for the server's "... on http://HOST:PORT" line in
// the log file `log`. Returns the port, 0 if none came; *pid is the shell's pid, -1 once it ended without one.
inline int spawn_and_wait_port(const std::string& cmd, const std::string& log, pid_t* pid, int tries) {
  *pid = fork();
  if (*pid == 0) {
    execl("/bin/sh", "sh", "-c", cmd.c_str(), static_cast<char*>(nullptr));
    _exit(127);
  }
  const std::regex re(R"(on http://[^:]+:(\d+))");
  int port = 0;
  for (int i = 0; i < tries && port == 0; ++i) {
    std::smatch m;
    const std::string text = slurp_file(log);
    if (std::regex_search(text, m, re)) port = std::stoi(m[1]);
    if (port == 0 && waitpid(*pid, nullptr, WNOHANG) == *pid) {
      *pid = -1;
      break;
    }
    if (port == 0) std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return port;
}

// `tern serve -m <model> --port 0 <extra>`; the constructor waits for the "serving ... on" line.
class ServerProcess {
 public:
  explicit ServerProcess(const std::string& extra_args, const std::string& model = "docs-llama-28m") {
    log_ = dir_.file("serve.log");
    const std::string path = model.rfind('/', 0) == 0 ? model : model_dir(model);  // an absolute path, or a shared model
    const std::string cmd = std::string("exec '") + TERN_BINARY + "' serve -m '" + path +
                            "' --port 0 " + extra_args + " >'" + dir_.file("serve.out") + "' 2>'" + log_ + "'";
    port_ = spawn_and_wait_port(cmd, log_, &pid_, 600);
  }
  ~ServerProcess() {
    if (pid_ > 0) {
      kill(pid_, SIGKILL);
      waitpid(pid_, nullptr, 0);
    }
  }
  int port() const { return port_; }
  pid_t pid() const { return pid_; }
  std::string log() const { return slurp_file(log_); }

  // SIGTERM, then the exit code (or -1 if it did not exit within `timeout_s`, -2 if killed by a signal).
  int terminate_and_wait(double timeout_s) {
    kill(pid_, SIGTERM);
    return wait_exit(timeout_s);
  }
  // The exit code once the process ends (-1 if it did not within `timeout_s`, -2 if killed by a signal).
  int wait_exit(double timeout_s) { return wait_child_exit(pid_, timeout_s); }

  // VmRSS in KiB.
  int64_t rss_kib() const {
    std::ifstream f("/proc/" + std::to_string(pid_) + "/status");
    std::string line;
    while (std::getline(f, line)) {
      if (line.rfind("VmRSS:", 0) == 0) return std::stoll(line.substr(6));
    }
    return -1;
  }

  httplib::Client client() const {
    httplib::Client c("127.0.0.1", port_);
    c.set_read_timeout(60, 0);
    c.set_connection_timeout(10, 0);
    return c;
  }

 private:
  TempDir dir_;
  std::string log_;
  pid_t pid_ = -1;
  int port_ = 0;
};

inline int connect_local(int port, int timeout_s = 30) {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  timeval tv{timeout_s, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(uint16_t(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    close(fd);
    return -1;
  }
  return fd;
}

inline void send_all(int fd, const std::string& bytes) {
  size_t off = 0;
  while (off < bytes.size()) {
    const ssize_t n = send(fd, bytes.data() + off, bytes.size() - off, MSG_NOSIGNAL);
    if (n <= 0) return;
    off += size_t(n);
  }
}

// Sends `bytes` as they are and reads until the server closes (requests carry Connection: close).
inline std::string raw_http(int port, const std::string& bytes) {
  const int fd = connect_local(port);
  if (fd < 0) return "";
  send_all(fd, bytes);
  std::string out;
  char buf[65536];
  for (;;) {
    const ssize_t n = recv(fd, buf, sizeof(buf), 0);
    if (n <= 0) break;
    out.append(buf, size_t(n));
  }
  close(fd);
  return out;
}

// Sends `bytes` and reads until the server closes or `timeout_s` passes; `closed` says which.
inline std::string send_and_read(int port, const std::string& bytes, int timeout_s, bool* closed = nullptr) {
  const int fd = connect_local(port, timeout_s);
  if (closed) *closed = false;
  if (fd < 0) return "";
  send_all(fd, bytes);
  std::string out;
  char buf[65536];
  for (;;) {
    const ssize_t n = recv(fd, buf, sizeof(buf), 0);
    if (n == 0 && closed) *closed = true;
    if (n <= 0) break;
    out.append(buf, size_t(n));
  }
  close(fd);
  return out;
}

// How many status lines a byte stream holds (for bodies that do not contain "HTTP/1.1 " themselves).
inline int count_responses(const std::string& bytes) {
  int n = 0;
  for (size_t at = 0; (at = bytes.find("HTTP/1.1 ", at)) != std::string::npos; at += 9) n++;
  return n;
}

// Lifts this process's descriptor limit (tests that open 1,000+ sockets).
inline void raise_fd_limit() {
  rlimit r{};
  if (getrlimit(RLIMIT_NOFILE, &r) == 0 && r.rlim_cur < r.rlim_max) {
    r.rlim_cur = r.rlim_max;
    setrlimit(RLIMIT_NOFILE, &r);
  }
}

inline int http_status(const std::string& response) {
  if (response.size() < 12 || response.rfind("HTTP/1.", 0) != 0) return -1;
  return std::atoi(response.c_str() + 9);
}

inline std::string http_body(const std::string& response) {
  const size_t at = response.find("\r\n\r\n");
  return at == std::string::npos ? "" : response.substr(at + 4);
}

inline std::string post_raw(const std::string& path, const std::string& body,
                            const std::string& content_type = "application/json") {
  return "POST " + path + " HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nContent-Type: " + content_type +
         "\r\nContent-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body;
}

// A gauge or counter from /metrics (-1 if absent).
inline double metric_value(const std::string& metrics, const std::string& name) {
  std::istringstream in(metrics);
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind(name + " ", 0) == 0) return std::stod(line.substr(name.size() + 1));
  }
  return -1;
}

}  // namespace tern::test
