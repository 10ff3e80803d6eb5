// `tern router`'s lifecycle: SIGHUP re-reads the replica file (a bad file keeps the set), SIGTERM drains
// (new requests 503, a stream in flight finishes whole, exit 0).
#include <gtest/gtest.h>

#include <fcntl.h>

#include "router_test_util.h"

namespace tern::test {
namespace {

TEST(RouterLifecycle, SighupReloadsTheReplicaFile) {
  auto a = start_replica();
  auto b = start_replica();
  ASSERT_GT(a->port(), 0) << a->log();
  ASSERT_GT(b->port(), 0) << b->log();
  TempDir dir;
  const std::string file = dir.file("replicas.txt");
  write_file(file, "# the first set\n" + a->url() + "\n");
  auto router = start_router("--health-interval 0.2 --replicas '" + file + "'");
  ASSERT_GT(router->port(), 0) << router->log();
  auto served_by = [&](int i) {
    const HttpResult r = http_call(router->port(), "POST", "/v1/chat/completions",
                                   chat_body("reload " + std::to_string(i), 4, false));
    EXPECT_EQ(r.status, 200) << r.body;
    return header_value(r, "x-tern-replica");
  };
  for (int i = 0; i < 3; ++i) EXPECT_EQ(served_by(i), a->url());

  write_file(file, b->url() + "\n");
  router->signal(SIGHUP);
  ASSERT_TRUE(wait_for_metrics(router->port(), [&](const std::string& m) {
    return metric_value(m, "tern_router_reloads_total") == 1 && replica_metric(m, "tern_router_replica_up", b->url()) == 1;
  })) << router->log();
  EXPECT_EQ(metric_value(router_metrics(router->port()), "tern_router_replicas"), 1);
  for (int i = 0; i < 3; ++i) EXPECT_EQ(served_by(i), b->url());

  write_file(file, "not a url/with a path\n");
  router->signal(SIGHUP);
  ASSERT_TRUE(wait_for_metrics(router->port(), [&](const std::string& m) {
    return metric_value(m, "tern_router_reload_errors_total") == 1;
  })) << router->log();
  EXPECT_NE(router->log().find("reload failed"), std::string::npos);
  for (int i = 0; i < 3; ++i) EXPECT_EQ(served_by(i), b->url());
  EXPECT_GT(router->pid(), 0);  // still running
}

TEST(RouterLifecycle, SigtermDrainsInFlightStreamsAndExitsZero) {
  // 20 fake steps/s and 60 tokens: the stream lasts about 3 s, long past the SIGTERM.
  auto a = start_replica(0, "--test-fake-steps-per-s 20");
  ASSERT_GT(a->port(), 0) << a->log();
  auto router = start_router("--replica " + a->url());
  ASSERT_GT(router->port(), 0) << router->log();

  // Read until the first event has come through (the stream is running), then SIGTERM.
  std::string raw;
  const int fd = open_stream(router->port(), chat_body("a long answer please", 60, true), raw);
  ASSERT_GE(fd, 0) << raw;
  router->signal(SIGTERM);
  ASSERT_TRUE(wait_for_metrics(router->port(), [](const std::string& m) {
    return metric_value(m, "tern_router_draining") == 1;
  }));
  // New work is refused while the stream drains (or the listener is already gone).
  const HttpResult late = http_call(router->port(), "POST", "/v1/chat/completions", chat_body("late", 4, false), "", 10);
  EXPECT_TRUE(late.status == 503 || late.status == -1) << late.status << " " << late.body;
  read_to_end(fd, raw);
  const HttpResult r = parse_http(raw);
  EXPECT_TRUE(r.complete) << raw;
  EXPECT_EQ(r.body.find("data: {\"error\""), std::string::npos) << r.body;
  ASSERT_GE(r.body.size(), 14u);
  EXPECT_EQ(r.body.substr(r.body.size() - 14), "data: [DONE]\n\n");
  EXPECT_EQ(router->wait_exit(60), 0) << router->log();
}

}  // namespace
}  // namespace tern::test
