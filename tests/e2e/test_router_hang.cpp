// A replica that hangs (SIGSTOP: connections accepted by the kernel, nothing answered) is taken out by
// its failing health checks, and its requests in flight move then: a whole one is retried on another
// replica, a stream already under way ends with the error event and [DONE]. SIGCONT brings it back.
#include <gtest/gtest.h>

#include <future>

#include "router_test_util.h"

namespace tern::test {
namespace {

TEST(RouterHang, AHungReplicasRequestsMoveWhenItIsTakenOut) {
  // 20 fake steps/s: the requests below last 5-10 s, long past the hang.
  auto v = start_replica(0, "--test-fake-steps-per-s 20");
  auto w = start_replica(0, "--test-fake-steps-per-s 20");
  ASSERT_GT(v->port(), 0) << v->log();
  ASSERT_GT(w->port(), 0) << w->log();
  // Round robin from a fresh counter: the 1st and 3rd requests go to v, the 2nd to w.
  auto router = start_router("--policy round-robin --health-interval 0.2 --health-timeout 2 --replica " + v->url() +
                             " --replica " + w->url());
  ASSERT_GT(router->port(), 0) << router->log();

  std::string raw;
  const int fd = open_stream(router->port(), chat_body("a stream on the replica that will hang", 200, true), raw);
  ASSERT_GE(fd, 0) << raw;
  EXPECT_EQ(header_value(parse_http(raw), "x-tern-replica"), v->url());
  const HttpResult second = http_call(router->port(), "POST", "/v1/chat/completions", chat_body("w", 1, false));
  ASSERT_EQ(second.status, 200) << second.body;
  EXPECT_EQ(header_value(second, "x-tern-replica"), w->url());
  auto whole = std::async(std::launch::async, [&] {
    return http_call(router->port(), "POST", "/v1/chat/completions", chat_body("a whole answer", 100, false));
  });
  ASSERT_TRUE(wait_for_metrics(router->port(), [&](const std::string& m) {
    return replica_metric(m, "tern_router_replica_in_flight", v->url()) == 2;
  }));

  v->signal(SIGSTOP);
  const HttpResult moved = whole.get();
  EXPECT_EQ(moved.status, 200) << moved.body;
  EXPECT_EQ(header_value(moved, "x-tern-replica"), w->url());
  read_to_end(fd, raw);
  const HttpResult cut = parse_http(raw);
  EXPECT_TRUE(cut.complete);
  EXPECT_NE(cut.body.find("\"replica_failed\""), std::string::npos) << cut.body;
  ASSERT_GE(cut.body.size(), 14u);
  EXPECT_EQ(cut.body.substr(cut.body.size() - 14), "data: [DONE]\n\n");
  const std::string m = router_metrics(router->port());
  EXPECT_EQ(replica_metric(m, "tern_router_replica_up", v->url()), 0);
  EXPECT_EQ(replica_metric(m, "tern_router_replica_up", w->url()), 1);
  EXPECT_EQ(metric_value(m, "tern_router_cut_streams_total"), 1);

  v->signal(SIGCONT);
  EXPECT_TRUE(wait_for_metrics(router->port(), [&](const std::string& text) {
    return replica_metric(text, "tern_router_replica_up", v->url()) == 1;
  })) << router->log();
}

}  // namespace
}  // namespace tern::test
