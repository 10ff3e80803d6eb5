// Scheduling to latency targets through `tern serve` (engine/slo_policy.h): a request whose TTFT target the
// queue makes unreachable is refused at admission with 429 + Retry-After, the others run; targets need the
// slo policy. The weightless engine runs 20 steps/s whatever the batch, so prompt work is counted in steps;
// the assertions hold however slow the machine is (a slower step refuses more, never the first request).
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <thread>

#include "serve_test_util.h"
#include "test_support.h"

namespace tern::test {
namespace {

using json = nlohmann::json;

std::string completion(int prompt_tokens, int max_tokens, const json& extra = json::object()) {
  json b = {{"model", "docs-llama-28m"}, {"prompt", std::vector<int>(size_t(prompt_tokens), 100)},
            {"max_tokens", max_tokens}, {"ignore_eos", true}};
  b.update(extra);
  return post_raw("/v1/completions", b.dump());
}

TEST(ServeSlo, UnreachableTtftIsRefusedWithRetryAfter) {
  ServerProcess server("--test-fake-engine --test-fake-steps-per-s 20 --slo-ttft-ms 1000 --slo-tpot-ms 500");
  ASSERT_GT(server.port(), 0) << server.log();
  // Steps of several sizes teach the cost model (3 prompt steps of up to 512 tokens, then decodes).
  const std::string warm = send_and_read(server.port(), completion(1500, 12), 300);
  ASSERT_EQ(http_status(warm), 200) << warm.substr(0, 400);

  // 24 requests of 1,500 prompt tokens at once: 3 steps each, 72 steps (3.6 s or more) in all.
  constexpr int kClients = 24;
  std::vector<std::string> answers(kClients);
  std::vector<std::thread> clients;
  for (int i = 0; i < kClients; ++i) {
    clients.emplace_back([&, i] { answers[size_t(i)] = send_and_read(server.port(), completion(1500, 2), 600); });
  }
  for (auto& t : clients) t.join();
  int ok = 0, refused = 0;
  for (const std::string& a : answers) {
    const int status = http_status(a);
    ASSERT_TRUE(status == 200 || status == 429) << a.substr(0, 400);
    if (status == 200) {
      ++ok;
      continue;
    }
    ++refused;
    EXPECT_NE(a.find("Retry-After: "), std::string::npos) << a.substr(0, 400);
    const json body = json::parse(http_body(a), nullptr, false);
    ASSERT_FALSE(body.is_discarded()) << a.substr(0, 400);
    EXPECT_EQ(body["error"]["code"], "slo_unreachable") << body.dump();
    EXPECT_EQ(body["error"]["type"], "rate_limit_error");
  }
  EXPECT_GE(ok, 1);
  EXPECT_GE(refused, 1) << "no request was refused although the queue held " << kClients * 3 << " steps";
  auto cli = server.client();
  auto m = cli.Get("/metrics");
  ASSERT_TRUE(m);
  EXPECT_EQ(metric_value(m->body, "tern_http_rejected_slo_total"), double(refused));
}

TEST(ServeSlo, RequestTargetsNeedTheSloPolicy) {
  ServerProcess server("--test-fake-engine");
  ASSERT_GT(server.port(), 0) << server.log();
  const std::string a = send_and_read(server.port(), completion(4, 2, {{"slo_ttft_ms", 500}}), 120);
  EXPECT_EQ(http_status(a), 400) << a.substr(0, 400);
  const json body = json::parse(http_body(a), nullptr, false);
  EXPECT_EQ(body["error"]["param"], "slo_ttft_ms") << body.dump();
  const std::string bad = send_and_read(server.port(), completion(4, 2, {{"slo_tpot_ms", -1}}), 120);
  EXPECT_EQ(http_status(bad), 400) << bad.substr(0, 400);

  // With the policy (and no server default), a request's own target is taken: a generous one runs.
  ServerProcess slo("--test-fake-engine --scheduling-policy slo");
  ASSERT_GT(slo.port(), 0) << slo.log();
  const std::string b = send_and_read(slo.port(), completion(4, 2, {{"slo_ttft_ms", 60000}, {"slo_tpot_ms", 60000}}), 120);
  EXPECT_EQ(http_status(b), 200) << b.substr(0, 400);
}

TEST(ServeSlo, TargetsWithAnotherPolicyAreACliError) {
  const CommandResult r = run_tern("serve -m " + model_dir("docs-llama-28m") +
                                   " --test-fake-engine --slo-ttft-ms 100 --scheduling-policy fcfs --port 0");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("tern: error:"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("--scheduling-policy slo"), std::string::npos) << r.err;
}

}  // namespace
}  // namespace tern::test
