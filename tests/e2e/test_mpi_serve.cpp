// `tern serve --tp 2` under mpirun (issue 17): rank 0 answers the OpenAI requests with the same
// greedy text as a single-process server, exports what it sent in /metrics, and a rank that dies
// gets every request in flight a clean 503 and ends the job (non-zero) instead of a server that hangs.
// Mixture-of-experts models under --tp 2, --ep 2, --tp 2 --ep 2 and --pp 2 --ep 2 pass the same
// concurrency, cancellation and prefix-cache checks as --pp 2 (mpi_server.h).
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>

#include <cctype>
#include <chrono>
#include <future>
#include <nlohmann/json.hpp>
#include <regex>
#include <thread>

#include "mpi_server.h"
#include "mpi_test_util.h"
#include "serve_test_util.h"
#include "tiny_moe_model.h"

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

TEST(MpiServe, ARankThatDiesGetsEveryRequestInFlightA503AndEndsTheJob) {
  TERN_SKIP_WITHOUT_MPI();
  MpiServer s(2, "--tp 2 --kv-memory-mb 64");
  ASSERT_GT(s.port(), 0) << s.log();
  ASSERT_FALSE(complete(s.port(), "Hello").empty());
  const std::vector<pid_t> ranks = s.ranks();
  ASSERT_EQ(ranks.size(), 2u) << s.log();
  // Two requests that would run for thousands of tokens: one streamed, one answered as a whole body.
  auto request = [](bool stream) {
    const std::string body = nlohmann::json{{"model", "docs-llama-28m"}, {"prompt", "The configuration file"},
                                            {"max_tokens", 3000}, {"ignore_eos", true}, {"temperature", 0},
                                            {"stream", stream}}.dump();
    return "POST /v1/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nConnection: close\r\n"
           "Content-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body;
  };
  std::string whole, streamed;
  std::thread a([&] { whole = send_and_read(s.port(), request(false), 120); });
  std::promise<void> first_chunk;
  std::thread b([&] {
    const int fd = connect_local(s.port(), 120);
    if (fd < 0) return first_chunk.set_value();
    send_all(fd, request(true));
    char buf[65536];
    bool told = false;
    for (ssize_t n; (n = recv(fd, buf, sizeof(buf), 0)) > 0;) {
      streamed.append(buf, size_t(n));
      if (!told && streamed.find("\"text\"") != std::string::npos) {
        told = true;
        first_chunk.set_value();  // both requests are being generated now
      }
    }
    if (!told) first_chunk.set_value();
    close(fd);
  });
  first_chunk.get_future().wait();
  kill(ranks.back(), SIGKILL);  // the higher pid: rank 1 (started after rank 0)
  a.join();
  b.join();
  // The whole-body request: a 503 with an OpenAI error naming the lost rank, not a dropped connection.
  EXPECT_NE(whole.find("HTTP/1.1 503"), std::string::npos) << whole.substr(0, 400) << "\n" << s.log();
  EXPECT_NE(whole.find("rank 1 of the parallel job stopped"), std::string::npos) << whole.substr(0, 400);
  // The stream had begun (200): it ends with an error event and [DONE].
  EXPECT_NE(streamed.find("HTTP/1.1 200"), std::string::npos) << streamed.substr(0, 400);
  EXPECT_NE(streamed.find("\"error\""), std::string::npos) << streamed.substr(streamed.size() > 400 ? streamed.size() - 400 : 0);
  EXPECT_NE(streamed.find("data: [DONE]"), std::string::npos);
  const int code = s.wait_exit(60);
  EXPECT_NE(code, -1) << "mpirun still running 60 s after a rank died\n" << s.log();
  EXPECT_NE(code, 0);
  EXPECT_NE(s.log().find("tern: error: rank 1 of the parallel job stopped"), std::string::npos) << s.log();
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

namespace tern::test {
namespace {

// A tiny MoE (tiny_moe_model.h) served under each layout that runs its MoE layers another way: every
// expert cut by columns (--tp 2), the experts over two ranks with one all-reduce per MoE layer (--ep
// 2), both (--tp 2 --ep 2: two expert groups of two tensor-parallel ranks), and expert groups inside
// pipeline stages (--pp 2 --ep 2). Qwen3-MoE: top-2 of 4 experts; Qwen2-MoE adds the gated shared
// expert (replicated under --ep, cut under --tp); DeepSeek-V3 latent attention (one latent KV per token).
struct MoeServeCase {
  const char* arch;
  int np;
  const char* layout;
};

// The case as ctest lists it (`# GetParam() = qwen3_moe --tp 2 on 2 ranks`), not as raw bytes.
void PrintTo(const MoeServeCase& c, std::ostream* os) { *os << c.arch << " " << c.layout << " on " << c.np << " ranks"; }

class MpiServeMoe : public ::testing::TestWithParam<MoeServeCase> {};

TEST_P(MpiServeMoe, ConcurrentRequestsCancellationAndPrefixCacheLikeTheSingleServer) {
  TERN_SKIP_WITHOUT_MPI();
  const TinyMoeModel m(GetParam().arch);
  expect_serves_like_one_process(GetParam().np, GetParam().layout, m.path());
}

INSTANTIATE_TEST_SUITE_P(
    Layouts, MpiServeMoe,
    ::testing::Values(MoeServeCase{"qwen3_moe", 2, "--tp 2"}, MoeServeCase{"qwen3_moe", 2, "--ep 2"},
                      MoeServeCase{"qwen3_moe", 4, "--tp 2 --ep 2"}, MoeServeCase{"qwen3_moe", 4, "--pp 2 --ep 2"},
                      MoeServeCase{"qwen2_moe", 2, "--tp 2"}, MoeServeCase{"qwen2_moe", 4, "--tp 2 --ep 2"},
                      MoeServeCase{"deepseek_v3", 2, "--tp 2"}),
    [](const ::testing::TestParamInfo<MoeServeCase>& i) {
      std::string n = std::string(i.param.arch) + "_";  // qwen3_moe_tp2ep2
      for (const char* c = i.param.layout; *c; ++c) {
        if (std::isalnum(static_cast<unsigned char>(*c))) n += *c;
      }
      return n;
    });

}  // namespace
}  // namespace tern::test
