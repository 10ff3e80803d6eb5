// Helpers for the `tern router` e2e tests: fake-engine `tern serve` replicas (a port of their own choice,
// or a given one to restart a killed replica on its old address), the router process, a minimal HTTP
// client over raw sockets (answers read to the close, chunked bodies de-chunked) and labelled metrics.
#pragma once

#include <fstream>

#include "serve_test_util.h"

namespace tern::test {

// A process started with `exec <cmd> 2>log`; the constructor waits for "on http://host:PORT" in its log.
class LoggedProcess {
 public:
  LoggedProcess(const std::string& args, double wait_s = 60) {
    log_ = dir_.file("proc.log");
    const std::string cmd = std::string("exec '") + TERN_BINARY + "' " + args + " >/dev/null 2>'" + log_ + "'";
    pid_ = fork();
    if (pid_ == 0) {
      execl("/bin/sh", "sh", "-c", cmd.c_str(), static_cast<char*>(nullptr));
      _exit(127);
    }
    const std::regex re(R"(on http://[^ ]+:(\d+))");
    const auto until = std::chrono::steady_clock::now() + std::chrono::duration<double>(wait_s);
    while (port_ == 0 && std::chrono::steady_clock::now() < until) {
      std::smatch m;
      const std::string log = slurp_file(log_);
      if (std::regex_search(log, m, re)) port_ = std::stoi(m[1]);
      if (port_ != 0) break;
      int status = 0;
      if (waitpid(pid_, &status, WNOHANG) == pid_) {
        pid_ = -1;
        exit_code_ = WIFEXITED(status) ? WEXITSTATUS(status) : -2;
        break;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
  }
  ~LoggedProcess() { kill_now(); }
  LoggedProcess(const LoggedProcess&) = delete;
  LoggedProcess& operator=(const LoggedProcess&) = delete;

  int port() const { return port_; }
  pid_t pid() const { return pid_; }
  int exit_code() const { return exit_code_; }  // when it exited before serving
  std::string log() const { return slurp_file(log_); }
  std::string url() const { return "http://127.0.0.1:" + std::to_string(port_); }
  void signal(int sig) const {
    if (pid_ > 0) ::kill(pid_, sig);
  }
  void kill_now() {
    if (pid_ > 0) {
      ::kill(pid_, SIGKILL);
      waitpid(pid_, nullptr, 0);
      pid_ = -1;
    }
  }
  // The exit code once it ends (-1: not within timeout_s, -2: killed by a signal).
  int wait_exit(double timeout_s) {
    const auto until = std::chrono::steady_clock::now() + std::chrono::duration<double>(timeout_s);
    while (pid_ > 0 && std::chrono::steady_clock::now() < until) {
      int status = 0;
      if (waitpid(pid_, &status, WNOHANG) == pid_) {
        pid_ = -1;
        return WIFEXITED(status) ? WEXITSTATUS(status) : -2;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    return pid_ > 0 ? -1 : exit_code_;
  }

 private:
  TempDir dir_;
  std::string log_;
  pid_t pid_ = -1;
  int port_ = 0;
  int exit_code_ = -1;
};

// A weightless replica: the real engine and HTTP server over the fake runner (docs-llama-28m's tokenizer).
inline std::unique_ptr<LoggedProcess> start_replica(int port = 0, const std::string& extra = "") {
  return std::make_unique<LoggedProcess>("serve -m '" + model_dir("docs-llama-28m") + "' --test-fake-engine --port " +
                                         std::to_string(port) + " " + extra);
}

inline std::unique_ptr<LoggedProcess> start_router(const std::string& args) {
  return std::make_unique<LoggedProcess>("router --port 0 " + args);
}

struct HttpResult {
  int status = -1;
  std::string head;  // status line and header fields
  std::string body;  // de-chunked
  bool complete = false;  // the framing ended (Content-Length reached, or the last chunk)
};

inline HttpResult parse_http(const std::string& raw) {
  HttpResult r;
  r.status = http_status(raw);
  const size_t at = raw.find("\r\n\r\n");
  if (at == std::string::npos) return r;
  r.head = raw.substr(0, at);
  std::string lower = r.head;
  for (char& c : lower) c = char(std::tolower(static_cast<unsigned char>(c)));
  const std::string rest = raw.substr(at + 4);
  if (lower.find("transfer-encoding: chunked") == std::string::npos) {
    r.body = rest;
    const size_t cl = lower.find("content-length: ");
    r.complete = cl != std::string::npos && rest.size() == size_t(std::stoll(lower.substr(cl + 16)));
    return r;
  }
  size_t p = 0;
  while (p < rest.size()) {
    const size_t eol = rest.find("\r\n", p);
    if (eol == std::string::npos) break;
    const size_t n = std::stoul(rest.substr(p, eol - p), nullptr, 16);
    if (n == 0) {
      r.complete = true;
      break;
    }
    if (eol + 2 + n > rest.size()) break;
    r.body += rest.substr(eol + 2, n);
    p = eol + 2 + n + 2;
  }
  return r;
}

inline std::string header_value(const HttpResult& r, const std::string& name_lower) {
  std::istringstream in(r.head);
  std::string line;
  while (std::getline(in, line)) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    std::string l = line;
    for (char& c : l) c = char(std::tolower(static_cast<unsigned char>(c)));
    if (l.rfind(name_lower + ":", 0) == 0) {
      std::string v = line.substr(name_lower.size() + 1);
      while (!v.empty() && v.front() == ' ') v.erase(0, 1);
      return v;
    }
  }
  return "";
}

// One request on its own connection (Connection: close), read to the close.
inline HttpResult http_call(int port, const std::string& method, const std::string& path, const std::string& body = "",
                            const std::string& extra_headers = "", int timeout_s = 120) {
  std::string req = method + " " + path + " HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n" + extra_headers;
  if (method == "POST") req += "Content-Type: application/json\r\nContent-Length: " + std::to_string(body.size()) + "\r\n";
  req += "\r\n" + body;
  return parse_http(send_and_read(port, req, timeout_s));
}

// A labelled series from /metrics: name{replica="url"} (-1 if absent).
inline double replica_metric(const std::string& metrics, const std::string& name, const std::string& url) {
  return metric_value(metrics, name + "{replica=\"" + url + "\"}");
}

inline std::string router_metrics(int port) { return http_call(port, "GET", "/metrics").body; }

// Waits (bounded) until pred(metrics text) holds; false if it never did.
template <typename Pred>
bool wait_for_metrics(int port, Pred pred, double timeout_s = 60) {
  const auto until = std::chrono::steady_clock::now() + std::chrono::duration<double>(timeout_s);
  while (std::chrono::steady_clock::now() < until) {
    if (pred(router_metrics(port))) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return false;
}

inline std::string chat_body(const std::string& user, int max_tokens, bool stream) {
  return std::string(R"({"model":"docs-llama-28m","temperature":0,"max_tokens":)") + std::to_string(max_tokens) +
         (stream ? R"(,"stream":true)" : "") + R"(,"messages":[{"role":"user","content":")" + user + R"("}]})";
}

// A streamed chat request sent on its own connection, read until its first event arrived (the stream is
// running): returns the socket (-1 on failure); raw holds what was read so far.
inline int open_stream(int port, const std::string& body, std::string& raw) {
  const int fd = connect_local(port, 120);
  if (fd < 0) return -1;
  send_all(fd, "POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nContent-Type: "
               "application/json\r\nContent-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body);
  char buf[65536];
  while (raw.find("data: {") == std::string::npos) {
    const ssize_t n = recv(fd, buf, sizeof(buf), 0);
    if (n <= 0) {
      close(fd);
      return -1;
    }
    raw.append(buf, size_t(n));
  }
  return fd;
}

// Reads the rest of the connection into raw and closes it.
inline void read_to_end(int fd, std::string& raw) {
  char buf[65536];
  for (;;) {
    const ssize_t n = recv(fd, buf, sizeof(buf), 0);
    if (n <= 0) break;
    raw.append(buf, size_t(n));
  }
  close(fd);
}

}  // namespace tern::test
