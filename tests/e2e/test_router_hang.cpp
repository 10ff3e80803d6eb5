// A replica that hangs (SIGSTOP: connections accepted by the kernel, nothing answered) is taken out by
// its failing health checks, and its requests in flight move then: a whole one is retried on another
// replica, a stream already under way ends with the error event and [DONE]. SIGCONT brings it back.
// Under load with the default health settings: no request is lost, none goes to the hung replica once it
// is out, and the busy healthy replicas are never taken out (busy is not hung: src/router/liveness.h).
#include <gtest/gtest.h>

#include <atomic>
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

TEST(RouterHang, AHungReplicaUnderLoadLosesNoRequestAndTheBusyOnesStay) {
  constexpr int kClients = 12;
  std::vector<std::unique_ptr<LoggedProcess>> replicas;
  std::string args;  // the default --health-interval / --health-timeout
  for (int i = 0; i < 3; ++i) {
    replicas.push_back(start_replica(0, "--test-fake-steps-per-s 100"));
    ASSERT_GT(replicas.back()->port(), 0) << replicas.back()->log();
    args += " --replica " + replicas.back()->url();
  }
  auto router = start_router(args);
  ASSERT_GT(router->port(), 0) << router->log();
  const std::string hung = replicas[2]->url();

  std::atomic<bool> stop{false};
  std::atomic<int> ok{0}, failed{0};
  std::mutex mu;
  std::string first_failure;
  std::vector<std::thread> clients;
  for (int c = 0; c < kClients; ++c) {
    clients.emplace_back([&, c] {
      for (int i = 0; !stop; ++i) {
        const HttpResult r = http_call(router->port(), "POST", "/v1/chat/completions",
                                       chat_body("client " + std::to_string(c) + " request " + std::to_string(i), 8, false));
        if (r.status == 200 && r.complete && r.body.find("\"finish_reason\"") != std::string::npos) {
          ok++;
        } else {
          std::lock_guard<std::mutex> lock(mu);
          if (failed++ == 0) first_failure = r.head + "\n" + r.body;
        }
      }
    });
  }
  auto wait_ok = [&](int n) {
    for (int i = 0; i < 6000 && ok.load() < n; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(20));
    return ok.load() >= n;
  };

  EXPECT_TRUE(wait_ok(60));
  replicas[2]->signal(SIGSTOP);
  EXPECT_TRUE(wait_for_metrics(router->port(), [&](const std::string& m) {
    return replica_metric(m, "tern_router_replica_up", hung) == 0;
  })) << router->log();
  const double sent_when_out = replica_metric(router_metrics(router->port()), "tern_router_replica_requests_total", hung);
  const int ok_when_out = ok.load();
  EXPECT_TRUE(wait_ok(ok_when_out + 150));
  const std::string m = router_metrics(router->port());
  EXPECT_EQ(replica_metric(m, "tern_router_replica_requests_total", hung), sent_when_out)
      << "requests went to the hung replica while it was out";
  EXPECT_EQ(replica_metric(m, "tern_router_replica_down_total", hung), 1);
  for (int i = 0; i < 2; ++i) {
    EXPECT_EQ(replica_metric(m, "tern_router_replica_down_total", replicas[size_t(i)]->url()), 0)
        << "a busy replica was taken out:\n" << router->log();
  }

  replicas[2]->signal(SIGCONT);
  EXPECT_TRUE(wait_for_metrics(router->port(), [&](const std::string& text) {
    return replica_metric(text, "tern_router_replica_up", hung) == 1;
  })) << router->log();
  const double before = replica_metric(router_metrics(router->port()), "tern_router_replica_requests_total", hung);
  EXPECT_TRUE(wait_ok(ok.load() + 60));
  stop = true;
  for (auto& t : clients) t.join();
  EXPECT_EQ(failed.load(), 0) << first_failure;
  EXPECT_GT(replica_metric(router_metrics(router->port()), "tern_router_replica_requests_total", hung), before);
  EXPECT_EQ(metric_value(router_metrics(router->port()), "tern_router_unrouted_total"), 0);
}

}  // namespace
}  // namespace tern::test
