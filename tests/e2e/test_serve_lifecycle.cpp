// What a client sees when its request cannot finish (issue 14, items 16 and 20): a non-streaming request
// cancelled by shutdown gets a non-2xx status (the status waits for the result, however long), and a
// second SIGTERM cancels the in-flight requests at once instead of waiting out the grace period.
// The weightless engine runs 20 steps/s, so a 2,000-token request outlasts every wait here.
#include <gtest/gtest.h>

#include <atomic>
#include <nlohmann/json.hpp>

#include "serve_test_util.h"

namespace tern::test {
namespace {

using json = nlohmann::json;

const std::string kSlowEngine = "--test-fake-engine --test-fake-steps-per-s 20 ";

std::string long_request(bool stream) {
  return post_raw("/v1/completions", json({{"model", "docs-llama-28m"}, {"prompt", "Count"}, {"max_tokens", 2000},
                                           {"ignore_eos", true}, {"stream", stream}})
                                         .dump());
}

// Waits until the engine runs `n` sequences (the requests were admitted).
bool wait_running(ServerProcess& server, int n) {
  auto cli = server.client();
  for (int i = 0; i < 3000; ++i) {
    auto m = cli.Get("/metrics");
    if (m && metric_value(m->body, "tern_requests_running") >= n) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return false;
}

bool wait_log(ServerProcess& server, const std::string& text) {
  for (int i = 0; i < 3000; ++i) {
    if (server.log().find(text) != std::string::npos) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return false;
}

TEST(ServeLifecycle, CancelledNonStreamingRequestGetsAnErrorStatus) {
  ServerProcess server(kSlowEngine + "--shutdown-grace 1");
  ASSERT_GT(server.port(), 0) << server.log();
  std::string answer;
  std::thread client([&] { answer = send_and_read(server.port(), long_request(false), 120); });
  ASSERT_TRUE(wait_running(server, 1));
  // Well past the moment an answer could be committed early (the old server sent 200 after 1 s).
  std::this_thread::sleep_for(std::chrono::seconds(2));
  EXPECT_EQ(server.terminate_and_wait(60), 0) << server.log();
  client.join();
  EXPECT_EQ(http_status(answer), 503) << answer.substr(0, 400);
  const json body = json::parse(http_body(answer), nullptr, false);
  ASSERT_FALSE(body.is_discarded()) << answer.substr(0, 400);
  EXPECT_EQ(body["error"]["code"], "shutting_down") << body.dump();
}

TEST(ServeLifecycle, SecondSigtermCancelsAtOnce) {
  ServerProcess server(kSlowEngine + "--shutdown-grace 600");
  ASSERT_GT(server.port(), 0) << server.log();
  constexpr int kStreams = 4;
  std::vector<std::string> bodies(kStreams + 1);
  std::vector<std::thread> clients;
  for (int i = 0; i < kStreams; ++i) {
    clients.emplace_back([&, i] { bodies[size_t(i)] = send_and_read(server.port(), long_request(true), 120); });
  }
  clients.emplace_back([&] { bodies[kStreams] = send_and_read(server.port(), long_request(false), 120); });
  ASSERT_TRUE(wait_running(server, kStreams + 1));
  kill(server.pid(), SIGTERM);
  ASSERT_TRUE(wait_log(server, "draining")) << server.log();
  kill(server.pid(), SIGTERM);
  // 600 s of grace are not waited out.
  EXPECT_EQ(server.wait_exit(60), 0) << server.log();
  for (auto& t : clients) t.join();
  for (int i = 0; i < kStreams; ++i) {
    const std::string& b = bodies[size_t(i)];
    EXPECT_EQ(http_status(b), 200);
    EXPECT_NE(b.find("\"shutting_down\""), std::string::npos) << "stream " << i << ": no error event";
    EXPECT_NE(b.find("data: [DONE]"), std::string::npos) << "stream " << i;
    EXPECT_EQ(b.substr(b.size() >= 5 ? b.size() - 5 : 0), "0\r\n\r\n") << "stream " << i << " half-written";
  }
  EXPECT_EQ(http_status(bodies[kStreams]), 503) << bodies[kStreams].substr(0, 300);
}

}  // namespace
}  // namespace tern::test
