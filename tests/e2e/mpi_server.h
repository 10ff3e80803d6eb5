// `tern serve` under mpirun in the e2e tests (test_mpi_serve.cpp, test_mpi_pp.cpp): the job on a free
// port, its ranks, its exit; and a greedy completion against a port.
#pragma once

#include <signal.h>
#include <sys/wait.h>

#include <chrono>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "mpi_test_util.h"
#include "serve_test_util.h"

namespace tern::test {

// mpirun -np N tern serve -m docs-llama-28m EXTRA on a free port; the constructor waits for the
// "serving ... on" line.
class MpiServer {
 public:
  MpiServer(int np, const std::string& extra) {
    log_ = dir_.file("serve.log");
    const std::string cmd = "exec env " + mpirun_prefix(np) + "'" + TERN_BINARY + "' serve -m '" +
                            model_dir("docs-llama-28m") + "' --port 0 -t 1 " + extra + " >'" +
                            dir_.file("serve.out") + "' 2>'" + log_ + "'";
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

// The greedy 16-token completion of `prompt` (empty on any failure).
inline std::string complete(int port, const std::string& prompt) {
  httplib::Client c("127.0.0.1", port);
  c.set_read_timeout(120, 0);
  const nlohmann::json body = {{"model", "docs-llama-28m"}, {"prompt", prompt}, {"max_tokens", 16}, {"temperature", 0}};
  auto r = c.Post("/v1/completions", body.dump(), "application/json");
  if (!r || r->status != 200) return "";
  return nlohmann::json::parse(r->body)["choices"][0]["text"];
}

}  // namespace tern::test
