// `tern router` end to end over fake-engine `tern serve` replicas: forwarding (whole and streamed
// answers the same as the replica's own), its /metrics and /health, the API key, bad flags, and a
// replica unreachable at start that joins once it is up.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "router_test_util.h"

namespace tern::test {
namespace {

// A process's private resident memory (RssAnon), KiB; -1 if unreadable.
int64_t anon_kib(pid_t pid) {
  std::ifstream status("/proc/" + std::to_string(pid) + "/status");
  for (std::string line; std::getline(status, line);) {
    if (line.rfind("RssAnon:", 0) == 0) return std::stoll(line.substr(8));
  }
  return -1;
}

using json = nlohmann::json;

// The text of an SSE chat stream (the deltas' content, in order) and whether it ended with [DONE].
std::string stream_text(const std::string& body, bool* done = nullptr) {
  std::string text;
  if (done) *done = body.find("data: [DONE]\n\n") != std::string::npos;
  size_t at = 0;
  while ((at = body.find("data: {", at)) != std::string::npos) {
    const size_t end = body.find("\n\n", at);
    const json ev = json::parse(body.substr(at + 6, end - at - 6), nullptr, false);
    at = end;
    if (ev.is_discarded() || !ev.contains("choices")) continue;
    for (const auto& c : ev["choices"]) {
      if (c.contains("delta") && c["delta"].contains("content") && c["delta"]["content"].is_string()) {
        text += c["delta"]["content"].get<std::string>();
      }
    }
  }
  return text;
}

TEST(Router, ForwardsWholeAndStreamedAnswersLikeTheReplica) {
  auto a = start_replica();
  auto b = start_replica();
  ASSERT_GT(a->port(), 0) << a->log();
  ASSERT_GT(b->port(), 0) << b->log();
  auto router = start_router("--replica " + a->url() + " --replica " + b->url());
  ASSERT_GT(router->port(), 0) << router->log();
  const int64_t anon_at_start = anon_kib(router->pid());

  const HttpResult models = http_call(router->port(), "GET", "/v1/models");
  ASSERT_EQ(models.status, 200) << models.body;
  EXPECT_NE(models.body.find("docs-llama-28m"), std::string::npos);

  for (int i = 0; i < 4; ++i) {
    const std::string user = "hello number " + std::to_string(i);
    const HttpResult via = http_call(router->port(), "POST", "/v1/chat/completions", chat_body(user, 12, false));
    ASSERT_EQ(via.status, 200) << via.body;
    const std::string served_by = header_value(via, "x-tern-replica");
    ASSERT_TRUE(served_by == a->url() || served_by == b->url()) << via.head;
    const int direct_port = served_by == a->url() ? a->port() : b->port();
    const HttpResult direct = http_call(direct_port, "POST", "/v1/chat/completions", chat_body(user, 12, false));
    ASSERT_EQ(direct.status, 200);
    EXPECT_EQ(json::parse(via.body)["choices"][0]["message"], json::parse(direct.body)["choices"][0]["message"]);

    const HttpResult sv = http_call(router->port(), "POST", "/v1/chat/completions", chat_body(user, 12, true));
    ASSERT_EQ(sv.status, 200) << sv.body;
    EXPECT_TRUE(sv.complete);
    EXPECT_NE(header_value(sv, "content-type").find("text/event-stream"), std::string::npos);
    const HttpResult sd = http_call(direct_port, "POST", "/v1/chat/completions", chat_body(user, 12, true));
    bool done_via = false, done_direct = false;
    EXPECT_EQ(stream_text(sv.body, &done_via), stream_text(sd.body, &done_direct));
    EXPECT_TRUE(done_via);
    EXPECT_TRUE(done_direct);
    EXPECT_EQ(stream_text(sv.body), json::parse(direct.body)["choices"][0]["message"]["content"].get<std::string>());
  }
  // The same conversation goes to the same replica (prefix affinity).
  const std::string first = header_value(http_call(router->port(), "POST", "/v1/chat/completions",
                                                   chat_body("same start", 4, false)), "x-tern-replica");
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(header_value(http_call(router->port(), "POST", "/v1/chat/completions", chat_body("same start", 4, false)),
                           "x-tern-replica"),
              first);
  }
  // A replica's own errors come back as they are.
  const HttpResult bad = http_call(router->port(), "POST", "/v1/chat/completions", R"({"model":"docs-llama-28m"})");
  EXPECT_EQ(bad.status, 400) << bad.body;
  EXPECT_EQ(http_call(router->port(), "GET", "/nowhere").status, 404);

  // It keeps no model: serving adds only a few buffers to its own (anonymous) memory (a 28M model alone is
  // 100+ MiB). Measured against its memory at start: a CUDA build relocates its GPU libraries into ~100 MiB of
  // private pages whatever the process runs.
  const int64_t anon_after = anon_kib(router->pid());
  EXPECT_GT(anon_at_start, 0);
  EXPECT_LT(anon_after - anon_at_start, 32 * 1024) << anon_at_start << " KiB at start, " << anon_after << " after";

  const HttpResult health = http_call(router->port(), "GET", "/health");
  EXPECT_EQ(health.status, 200) << health.body;
  const std::string m = router_metrics(router->port());
  EXPECT_EQ(metric_value(m, "tern_router_requests_total"), 14);  // models, 4 x (whole, stream), 4 same start, the bad one
  EXPECT_EQ(metric_value(m, "tern_router_replicas_healthy"), 2);
  EXPECT_EQ(replica_metric(m, "tern_router_replica_up", a->url()), 1);
  EXPECT_EQ(replica_metric(m, "tern_router_replica_failures_total", a->url()), 0);
  EXPECT_GE(replica_metric(m, "tern_router_replica_affinity_hits_total", a->url()) +
                replica_metric(m, "tern_router_replica_affinity_hits_total", b->url()),
            12);
}

TEST(Router, ApiKeyIsRequiredAndSentToTheReplicas) {
  auto a = start_replica(0, "--api-key sekret --host 127.0.0.1");
  ASSERT_GT(a->port(), 0) << a->log();
  auto router = start_router("--api-key sekret --replica " + a->url());
  ASSERT_GT(router->port(), 0) << router->log();
  EXPECT_EQ(http_call(router->port(), "POST", "/v1/chat/completions", chat_body("hi", 4, false)).status, 401);
  EXPECT_EQ(http_call(router->port(), "GET", "/metrics").status, 401);
  EXPECT_EQ(http_call(router->port(), "GET", "/health").status, 200);
  const HttpResult ok = http_call(router->port(), "POST", "/v1/chat/completions", chat_body("hi", 4, false),
                                  "Authorization: Bearer sekret\r\n");
  EXPECT_EQ(ok.status, 200) << ok.body;
}

TEST(Router, BadFlagsAndFilesAreOneLineErrors) {
  TempDir dir;
  const std::string bad_file = dir.file("replicas.txt");
  std::ofstream(bad_file) << "http://127.0.0.1:1\nftp://nope\n";
  const struct {
    std::string args, expect;
  } cases[] = {
      {"router", "no replicas"},
      {"router --replica https://127.0.0.1:1", "https is not supported"},
      {"router --replica 127.0.0.1:99999", "port"},
      {"router --replica a:1 --replica a:1", "twice"},
      {"router --replicas /nonexistent/list", "cannot read the replica file"},
      {"router --replicas '" + bad_file + "'", bad_file + ":2"},
      {"router --replica a:1 --policy random", "--policy"},
      {"router --replica a:1 --balance 0.5", "--balance"},
      {"router --replica a:1 --balance-slack -1", "--balance-slack"},
  };
  for (const auto& c : cases) {
    const CommandResult r = run_tern(c.args);
    EXPECT_EQ(r.exit_code, 1) << c.args << "\n" << r.err;
    EXPECT_NE(r.err.find("tern: error:"), std::string::npos) << c.args << "\n" << r.err;
    EXPECT_NE(r.err.find(c.expect), std::string::npos) << c.args << "\n" << r.err;
    EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << c.args << "\n" << r.err;
  }
}

TEST(Router, AReplicaDownAtStartJoinsWhenItComesUp) {
  // A free port: a replica started and stopped, its address then comes back.
  int port = 0;
  {
    auto probe = start_replica();
    ASSERT_GT(probe->port(), 0) << probe->log();
    port = probe->port();
  }
  const std::string url = "http://127.0.0.1:" + std::to_string(port);
  auto router = start_router("--health-interval 0.2 --replica " + url);
  ASSERT_GT(router->port(), 0) << router->log();
  EXPECT_NE(router->log().find("is down"), std::string::npos) << router->log();
  EXPECT_EQ(http_call(router->port(), "GET", "/health").status, 503);
  const HttpResult refused = http_call(router->port(), "POST", "/v1/chat/completions", chat_body("hi", 4, false));
  EXPECT_EQ(refused.status, 503) << refused.body;
  EXPECT_NE(refused.body.find("no_replica"), std::string::npos) << refused.body;

  auto replica = start_replica(port);
  ASSERT_EQ(replica->port(), port) << replica->log();
  ASSERT_TRUE(wait_for_metrics(router->port(), [&](const std::string& m) {
    return replica_metric(m, "tern_router_replica_up", url) == 1;
  })) << router->log();
  const HttpResult ok = http_call(router->port(), "POST", "/v1/chat/completions", chat_body("hi", 4, false));
  EXPECT_EQ(ok.status, 200) << ok.body;
  EXPECT_EQ(metric_value(router_metrics(router->port()), "tern_router_unrouted_total"), 1);
}

}  // namespace
}  // namespace tern::test
