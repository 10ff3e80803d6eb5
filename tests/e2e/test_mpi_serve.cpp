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

#include "mpi_server.h"
#include "mpi_test_util.h"
#include "serve_test_util.h"

namespace tern::test {
namespace {

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
  MpiServer two(2, "--tp 2 " + args);
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
  MpiServer s(2, "--tp 2 --kv-memory-mb 64");
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
  MpiServer s(2, "--tp 2 --kv-memory-mb 64 --tp-comm int8");
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
