// `tern serve` under mpirun in the e2e tests (test_mpi_serve.cpp, test_mpi_pp.cpp): the job on a free
// port, its ranks, its exit; and a greedy completion against a port.
#pragma once

#include <signal.h>
#include <sys/wait.h>

#include <chrono>
#include <filesystem>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "mpi_test_util.h"
#include "serve_test_util.h"

namespace tern::test {

// mpirun -np N tern serve -m MODEL EXTRA on a free port (MODEL: an absolute path, or a shared model's
// name; docs-llama-28m by default); the constructor waits for the "serving ... on" line.
class MpiServer {
 public:
  MpiServer(int np, const std::string& extra, const std::string& model = "docs-llama-28m") {
    log_ = dir_.file("serve.log");
    const std::string path = model.rfind('/', 0) == 0 ? model : model_dir(model);
    const std::string cmd = "exec env " + mpirun_prefix(np) + "'" + TERN_BINARY + "' serve -m '" + path +
                            "' --port 0 -t 1 " + extra + " >'" + dir_.file("serve.out") + "' 2>'" + log_ + "'";
    port_ = spawn_and_wait_port(cmd, log_, &pid_, 1200);
  }
  // SIGTERM to mpirun (it forwards it and reaps its ranks), then SIGKILL to whatever is left:
  // OpenMPI gives each rank its own process group, so killing mpirun's group would orphan them.
  ~MpiServer() {
    if (pid_ <= 0) return;
    const std::vector<pid_t> left = ranks();
    kill(pid_, SIGTERM);
    if (wait_exit(15) == -1) {
      kill(pid_, SIGKILL);
      waitpid(pid_, nullptr, 0);
    }
    for (pid_t p : left) kill(p, SIGKILL);
  }
  int port() const { return port_; }
  std::string log() const { return slurp_file(log_); }
  // The exit code of mpirun, -1 when it is still running after timeout_s, -2 when killed by a signal.
  int wait_exit(double timeout_s) { return wait_child_exit(pid_, timeout_s); }
  // The ranks' pids, in start order: mpirun's children (`tern serve ...`).
  std::vector<pid_t> ranks() const {
    std::vector<pid_t> out;
    if (pid_ <= 0) return out;
    const CommandResult r = run_shell("pgrep -P " + std::to_string(pid_) + " -f ' serve -m '");
    std::istringstream in(r.out);
    for (pid_t p; in >> p;) out.push_back(p);
    return out;
  }
  pid_t pid() const { return pid_; }

 private:
  TempDir dir_;
  std::string log_;
  pid_t pid_ = -1;
  int port_ = 0;
};

// The greedy 16-token completion of `prompt` by the served `model` (empty on any failure).
inline std::string complete(int port, const std::string& prompt, const std::string& model = "docs-llama-28m") {
  httplib::Client c("127.0.0.1", port);
  c.set_read_timeout(120, 0);
  const nlohmann::json body = {{"model", model}, {"prompt", prompt}, {"max_tokens", 16}, {"temperature", 0}};
  auto r = c.Post("/v1/completions", body.dump(), "application/json");
  if (!r || r->status != 200) return "";
  return nlohmann::json::parse(r->body)["choices"][0]["text"];
}

inline std::string metrics(int port) {
  httplib::Client c("127.0.0.1", port);
  auto m = c.Get("/metrics");
  return m ? m->body : "";
}

// What `tern serve` must do under a parallel layout as a single server does (test_mpi_pp.cpp for
// --pp, test_mpi_serve.cpp for mixture-of-experts models under --tp / --ep): three requests at once
// answered with the single server's greedy text (the steps batch them on every rank), a stream the
// client walks away from after its first event cancelled while the ranks go on, and a repeated
// prompt answered alike from the prefix cache. model: as MpiServer's; served under its directory's
// name. layout: the parallel options (e.g. "--tp 2"), on np ranks.
inline void expect_serves_like_one_process(int np, const std::string& layout, const std::string& model = "docs-llama-28m") {
  // The third is 45 tokens of docs-llama-28m's vocabulary (its first two 16-token blocks are cached
  // for the repeat below; a byte-level vocabulary makes it longer).
  const char* prompts[] = {"The configuration file", "To install the package",
                           "The configuration file of the server lists the models it serves, the port it listens on, "
                           "the number of threads each request may use, and the size of the key value cache in megabytes"};
  const std::string name = std::filesystem::path(model).filename().string();
  const std::string args = "--kv-dtype f32 --kv-memory-mb 64";
  std::string want[3];
  {
    ServerProcess one("-t 1 " + args, model);
    ASSERT_GT(one.port(), 0) << one.log();
    for (int i = 0; i < 3; ++i) want[i] = complete(one.port(), prompts[i], name);
  }
  MpiServer par(np, args + " " + layout, model);
  ASSERT_GT(par.port(), 0) << par.log();
  std::string got[3];
  {
    std::vector<std::thread> ts;
    for (int i = 0; i < 3; ++i) ts.emplace_back([&, i] { got[i] = complete(par.port(), prompts[i], name); });
    for (auto& t : ts) t.join();
  }
  for (int i = 0; i < 3; ++i) {
    EXPECT_FALSE(want[i].empty()) << prompts[i];
    EXPECT_EQ(got[i], want[i]) << layout << ": " << prompts[i];
  }
  // A stream the client walks away from after its first event: the engine cancels it, the ranks go on.
  {
    const int fd = connect_local(par.port());
    ASSERT_GE(fd, 0);
    send_all(fd, post_raw("/v1/completions", nlohmann::json({{"model", name}, {"prompt", "Count"},
                                                              {"max_tokens", 400}, {"ignore_eos", true},
                                                              {"stream", true}})
                                                 .dump()));
    std::string head;
    char buf[4096];
    while (head.find("data:") == std::string::npos) {
      const ssize_t n = recv(fd, buf, sizeof(buf), 0);
      if (n <= 0) break;
      head.append(buf, size_t(n));
    }
    close(fd);
    EXPECT_NE(head.find("data:"), std::string::npos) << head;
  }
  bool idle = false;
  for (int i = 0; i < 1200 && !idle; ++i) {
    const std::string m = metrics(par.port());
    idle = metric_value(m, "tern_requests_running") == 0 && metric_value(m, "tern_http_client_disconnects_total") >= 1;
    if (!idle) std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  EXPECT_TRUE(idle) << metrics(par.port());
  // The same prompt again: its blocks come from the prefix cache (every rank keeps its part of their
  // K/V under the same block ids) and the answer is the same.
  EXPECT_EQ(complete(par.port(), prompts[2], name), want[2]);
  EXPECT_GT(metric_value(metrics(par.port()), "tern_prefix_cache_hit_rate"), 0) << metrics(par.port());
}

}  // namespace tern::test
