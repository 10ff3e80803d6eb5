// tern serve under load and abuse: 1,000 requests at concurrency 64 with random parameters (each answered
// exactly once, memory bounded), 1,000 clients at once (200 or 429, never a hang or crash), 100 streams cut
// mid-way (the KV blocks they held return to zero), SIGTERM mid-load (every stream ends whole, exit 0).
#include <gtest/gtest.h>

#include <atomic>
#include <mutex>
#include <nlohmann/json.hpp>
#include <random>

#include "serve_engine_args.h"
#include "serve_test_util.h"

namespace tern::test {
namespace {

using json = nlohmann::json;

// Checks one answer: a complete JSON body, or an SSE stream ending in [DONE]. Returns "" if good.
std::string check_answer(bool stream, int status, const std::string& body, int expect_choices) {
  if (status != 200) return "status " + std::to_string(status) + ": " + body.substr(0, 200);
  if (!stream) {
    const json j = json::parse(body, nullptr, false);
    if (j.is_discarded() || !j.contains("choices")) return "bad body: " + body.substr(0, 200);
    if (int(j["choices"].size()) != expect_choices) return "wrong number of choices: " + body.substr(0, 200);
    return "";
  }
  const std::string done = "data: [DONE]\n\n";
  if (body.size() < done.size() || body.compare(body.size() - done.size(), done.size(), done) != 0) {
    return "stream does not end with [DONE]: " + body.substr(body.size() > 200 ? body.size() - 200 : 0);
  }
  for (size_t at = 0; (at = body.find("data: {", at)) != std::string::npos; at += 6) {
    const size_t end = body.find("\n\n", at);
    const json ev = json::parse(body.substr(at + 6, end - at - 6), nullptr, false);
    if (ev.is_discarded()) return "an SSE event is not JSON: " + body.substr(at, 200);
    if (ev.contains("error")) return "stream carried an error: " + ev.dump();
  }
  return "";
}

json random_request(std::mt19937& rng, bool& stream, int& choices) {
  std::uniform_int_distribution<int> coin(0, 1), pick(0, 3);
  const bool chat = coin(rng);
  stream = coin(rng);
  choices = 1 + int(rng() % 2);
  json r = {{"model", kServeModel}, {"max_tokens", 1 + int(rng() % 24)}, {"stream", stream}, {"n", choices}};
  if (chat) {
    r["messages"] = {{{"role", "user"}, {"content", "Question " + std::to_string(rng() % 1000)}}};
  } else {
    r["prompt"] = "Once upon a time " + std::to_string(rng() % 1000);
  }
  if (pick(rng) == 0) r["temperature"] = double(rng() % 150) / 100.0;
  if (pick(rng) == 0) r["top_p"] = 0.5 + double(rng() % 50) / 100.0;
  if (pick(rng) == 0) r["top_k"] = int(rng() % 50);
  if (pick(rng) == 0) r["min_p"] = 0.05;
  if (pick(rng) == 0) r["seed"] = int(rng() % 100000);
  if (pick(rng) == 0) r["stop"] = json::array({"zzz", "\n\n"});
  if (pick(rng) == 0) r["presence_penalty"] = 0.5;
  if (pick(rng) == 0) r["frequency_penalty"] = 0.3;
  if (pick(rng) == 0) {
    if (chat) {
      r["logprobs"] = true;
      r["top_logprobs"] = 2;
    } else {
      r["logprobs"] = 2;
    }
  }
  if (stream && coin(rng)) r["stream_options"] = {{"include_usage", true}};
  return r;
}

TEST(ServeLoad, ThousandRequestsAtConcurrency64AnsweredExactlyOnce) {
  ServerProcess server(kServeEngineArgs);
  ASSERT_GT(server.port(), 0) << server.log();
  const int64_t rss0 = server.rss_kib();
  constexpr int kRequests = 1000, kConcurrency = 64;
  std::atomic<int> next{0};
  std::vector<int> answered(kRequests, 0);
  std::mutex mu;
  std::vector<std::string> failures;
  std::vector<std::thread> workers;
  for (int w = 0; w < kConcurrency; ++w) {
    workers.emplace_back([&, w] {
      std::mt19937 rng(1234 + w);
      auto cli = server.client();
      cli.set_keep_alive(true);
      for (int i; (i = next++) < kRequests;) {
        bool stream = false;
        int choices = 1;
        const json req = random_request(rng, stream, choices);
        auto res = cli.Post(req.contains("messages") ? "/v1/chat/completions" : "/v1/completions", req.dump(),
                            "application/json");
        std::string err = res ? check_answer(stream, res->status, res->body, choices)
                             : "no response: " + httplib::to_string(res.error());
        std::lock_guard<std::mutex> lock(mu);
        answered[size_t(i)]++;
        if (!err.empty() && failures.size() < 10) failures.push_back(req.dump() + " -> " + err);
      }
    });
  }
  for (auto& t : workers) t.join();
  for (const auto& f : failures) ADD_FAILURE() << f;
  for (int i = 0; i < kRequests; ++i) ASSERT_EQ(answered[size_t(i)], 1) << "request " << i;
  // Still alive, nothing left in flight, memory bounded.
  auto cli = server.client();
  auto metrics = cli.Get("/metrics");
  ASSERT_TRUE(metrics);
  EXPECT_EQ(metric_value(metrics->body, "tern_http_requests_in_flight"), 0);
  const int64_t rss1 = server.rss_kib();
  EXPECT_LT(rss1 - rss0, 256 * 1024) << "RSS grew from " << rss0 << " KiB to " << rss1 << " KiB";
}

TEST(ServeLoad, ThousandSimultaneousClientsGet200Or429) {
  ServerProcess server(std::string(kServeEngineArgs) + " --max-queue 128");
  ASSERT_GT(server.port(), 0) << server.log();
  constexpr int kClients = 1000;
  const std::string req =
      post_raw("/v1/completions", R"({"model":"docs-llama-28m","prompt":"Hi","max_tokens":8})");
  std::vector<int> fds;
  for (int i = 0; i < kClients; ++i) {
    const int fd = connect_local(server.port(), 60);
    ASSERT_GE(fd, 0) << "connect " << i;
    send_all(fd, req);
    fds.push_back(fd);
  }
  int ok = 0, busy = 0, other = 0;
  for (int fd : fds) {
    std::string out;
    char buf[8192];
    for (ssize_t n; (n = recv(fd, buf, sizeof(buf), 0)) > 0;) out.append(buf, size_t(n));
    close(fd);
    const int s = http_status(out);
    (s == 200 ? ok : s == 429 ? busy : other)++;
  }
  EXPECT_EQ(other, 0) << ok << " ok, " << busy << " 429";
  EXPECT_GT(ok, 0);
  auto health = server.client().Get("/health");
  ASSERT_TRUE(health);
  EXPECT_EQ(health->status, 200);
}

// Counts a stream as cut once two token events came and no [DONE]: ignore_eos keeps every stream running
// far longer than the test reads it, so the count does not depend on how fast a loaded machine is.
TEST(ServeLoad, CutStreamsFreeTheirKvBlocks) {
  ServerProcess server{std::string(kServeEngineArgs)};
  ASSERT_GT(server.port(), 0) << server.log();
  constexpr int kStreams = 100;
  std::vector<std::thread> threads;
  std::atomic<int> cut{0};
  std::mutex mu;
  std::vector<std::string> odd;
  for (int t = 0; t < 20; ++t) {
    threads.emplace_back([&, t] {
      for (int i = t; i < kStreams; i += 20) {
        const std::string body = json({{"model", kServeModel}, {"prompt", "Tell me a long story " + std::to_string(i)},
                                       {"max_tokens", 2000}, {"ignore_eos", true}, {"stream", true}})
                                     .dump();
        const int fd = connect_local(server.port(), 120);
        if (fd < 0) continue;
        send_all(fd, post_raw("/v1/completions", body));
        // Read until two token events arrived, then hang up mid-stream.
        std::string seen;
        char buf[4096];
        auto events = [&] {
          size_t n = 0;
          for (size_t at = 0; (at = seen.find("data: {", at)) != std::string::npos; at += 7) n++;
          return n;
        };
        while (events() < 2 && seen.find("[DONE]") == std::string::npos) {
          const ssize_t n = recv(fd, buf, sizeof(buf), 0);
          if (n <= 0) break;
          seen.append(buf, size_t(n));
        }
        close(fd);
        if (events() >= 2 && seen.find("[DONE]") == std::string::npos) {
          cut++;
        } else {
          std::lock_guard<std::mutex> lock(mu);
          odd.push_back(seen.substr(0, 300));
        }
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(cut.load(), kStreams) << (odd.empty() ? "" : odd[0]);
  // Cancellation frees the blocks promptly (bench_serve_http --cut measures how fast); here only that it
  // happens: up to 60 s on a loaded machine.
  auto cli = server.client();
  double used = -1, running = -1;
  for (int i = 0; i < 3000; ++i) {
    auto m = cli.Get("/metrics");
    ASSERT_TRUE(m);
    used = metric_value(m->body, "tern_kv_blocks_used");
    running = metric_value(m->body, "tern_requests_running") + metric_value(m->body, "tern_requests_waiting");
    if (used == 0 && running == 0) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  EXPECT_EQ(used, 0);
  EXPECT_EQ(running, 0);
  auto m = cli.Get("/metrics");
  ASSERT_TRUE(m);
  EXPECT_GE(metric_value(m->body, "tern_http_client_disconnects_total"), kStreams);
}

TEST(ServeLoad, SigtermMidLoadFinishesStreamsAndExitsZero) {
  ServerProcess server(kServeEngineArgs);
  ASSERT_GT(server.port(), 0) << server.log();
  constexpr int kStreams = 32;
  std::vector<std::string> bodies(kStreams);
  std::vector<std::thread> threads;
  std::atomic<int> started{0};
  for (int i = 0; i < kStreams; ++i) {
    threads.emplace_back([&, i] {
      const std::string body = json({{"model", kServeModel}, {"prompt", "Count " + std::to_string(i)},
                                     {"max_tokens", 200}, {"stream", true}})
                                   .dump();
      const int fd = connect_local(server.port());
      if (fd < 0) return;
      send_all(fd, post_raw("/v1/completions", body));
      char buf[4096];
      for (ssize_t n; (n = recv(fd, buf, sizeof(buf), 0)) > 0;) {
        if (bodies[size_t(i)].empty()) started++;
        bodies[size_t(i)].append(buf, size_t(n));
      }
      close(fd);
    });
  }
  for (int i = 0; i < 500 && started.load() < kStreams; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  ASSERT_EQ(started.load(), kStreams);
  EXPECT_EQ(server.terminate_and_wait(60), 0) << server.log();
  for (auto& t : threads) t.join();
  for (int i = 0; i < kStreams; ++i) {
    const std::string& b = bodies[size_t(i)];
    EXPECT_EQ(http_status(b), 200);
    // Chunked framing complete (the zero-length last chunk) and the SSE stream closed by [DONE].
    EXPECT_NE(b.find("data: [DONE]"), std::string::npos) << "stream " << i << " cut short";
    EXPECT_EQ(b.substr(b.size() >= 5 ? b.size() - 5 : 0), "0\r\n\r\n") << "stream " << i << " half-written";
  }
}

}  // namespace
}  // namespace tern::test
