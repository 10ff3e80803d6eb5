// `tern serve --tp 2` under mpirun (issue 17): rank 0 answers the OpenAI requests with the same
// greedy text as a single-process server, exports what it sent in /metrics, and a rank that dies
// ends the job (mpirun exits non-zero) within seconds instead of leaving a server that hangs.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>

#include <chrono>
#include <nlohmann/json.hpp>
#include <regex>
#include <thread>

#include "mpi_test_util.h"
#include "serve_test_util.h"

namespace tern::test {
namespace {

// mpirun -np 2 tern serve --tp 2 on a free port; the constructor waits for the "serving ... on" line.
class MpiServer {
 public:
  explicit MpiServer(const std::string& extra) {
    log_ = dir_.file("serve.log");
    const std::string cmd = "exec env " + mpirun_prefix(2) + "'" + TERN_BINARY + "' serve -m '" +
                            model_dir("docs-llama-28m") + "' --port 0 -t 1 --tp 2 " + extra + " >'" +
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
  int wait_exit(double timeout_s) {
    const auto until = std::chrono::steady_clock::now() + std::chrono::duration<double>(timeout_s);
    while (std::chrono::steady_clock::now() < until) {
      int status = 0;
      if (waitpid(pid_, &status, WNOHANG) == pid_) {
        pid_ = -1;
        return WIFEXITED(status) ? WEXITSTATUS(status) : -2;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    return -1;
  }
  // The ranks' pids, in start order: mpirun's children (`tern serve ... --tp 2`).
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

std::string complete(int port, const std::string& prompt) {
  httplib::Client c("127.0.0.1", port);
  c.set_read_timeout(120, 0);
  const nlohmann::json body = {{"model", "docs-llama-28m"}, {"prompt", prompt}, {"max_tokens", 16}, {"temperature", 0}};
  auto r = c.Post("/v1/completions", body.dump(), "application/json");
  if (!r || r->status != 200) return "";
  return nlohmann::json::parse(r->body)["choices"][0]["text"];
}

TEST(MpiServe, AnswersLikeTheSingleProcessServer) {
  TERN_SKIP_WITHOUT_MPI();
  const std::string args = "--kv-dtype f32 --kv-memory-mb 64";
  std::string want[2];
  {
    ServerProcess one("-t 1 " + args);
    ASSERT_GT(one.port(), 0) << one.log();
    want[0] = complete(one.port(), "The configuration file");
    want[1] = complete(one.port(), "To install the package");
  }
  MpiServer two(args);
  ASSERT_GT(two.port(), 0) << two.log();
  // Two requests at once: one engine step batches both, on both ranks.
  std::string got[2];
  std::thread t([&] { got[1] = complete(two.port(), "To install the package"); });
  got[0] = complete(two.port(), "The configuration file");
  t.join();
  EXPECT_FALSE(want[0].empty());
  EXPECT_EQ(got[0], want[0]);
  EXPECT_EQ(got[1], want[1]);
  httplib::Client c("127.0.0.1", two.port());
  auto m = c.Get("/metrics");
  ASSERT_TRUE(m);
  EXPECT_NE(m->body.find("tern_tp_ranks 2"), std::string::npos);
  // 2 all-reduces per layer per token of [hidden] f32: 2 × 8 × 512 × 4 bytes each token forwarded.
  std::smatch bytes;
  ASSERT_TRUE(std::regex_search(m->body, bytes, std::regex(R"(tern_tp_all_reduce_bytes_total (\d+))")));
  EXPECT_GT(std::stoll(bytes[1]), 0);
  EXPECT_EQ(std::stoll(bytes[1]) % (2 * 8 * 512 * 4), 0);
}

TEST(MpiServe, ARankThatDiesEndsTheJobWithinSeconds) {
  TERN_SKIP_WITHOUT_MPI();
  MpiServer s("--kv-memory-mb 64");
  ASSERT_GT(s.port(), 0) << s.log();
  ASSERT_FALSE(complete(s.port(), "Hello").empty());
  const std::vector<pid_t> ranks = s.ranks();
  ASSERT_EQ(ranks.size(), 2u) << s.log();
  kill(ranks.back(), SIGKILL);  // the higher pid: rank 1 (started after rank 0)
  const int code = s.wait_exit(30);
  EXPECT_NE(code, -1) << "mpirun still running 30 s after a rank died\n" << s.log();
  EXPECT_NE(code, 0);
}

}  // namespace
}  // namespace tern::test

namespace tern::test {
namespace {

TEST(MpiServe, Int8AllReduceCountsItsBytesInMetrics) {
  TERN_SKIP_WITHOUT_MPI();
  MpiServer s("--kv-memory-mb 64 --tp-comm int8");
  ASSERT_GT(s.port(), 0) << s.log();
  ASSERT_FALSE(complete(s.port(), "The configuration file").empty());
  httplib::Client c("127.0.0.1", s.port());
  auto m = c.Get("/metrics");
  ASSERT_TRUE(m);
  // 2 all-reduces per layer per token of [hidden] int8 codes + one f32 scale: 2 × 8 × (512 + 4) bytes.
  std::smatch bytes;
  ASSERT_TRUE(std::regex_search(m->body, bytes, std::regex(R"(tern_tp_all_reduce_bytes_total (\d+))")));
  EXPECT_GT(std::stoll(bytes[1]), 0);
  EXPECT_EQ(std::stoll(bytes[1]) % (2 * 8 * 516), 0);
  EXPECT_NE(std::stoll(bytes[1]) % (2 * 8 * 512 * 4), 0);
}

}  // namespace
}  // namespace tern::test
