// `tern router`'s front as a `tern serve` user expects it: the Host / Origin / CORS guard and its options
// (--allowed-host, --cors-origin), the API key also as x-api-key (Anthropic's clients) with errors in
// Anthropic's shape on /v1/messages, --metrics-public, the front's limits as options, the default bind
// with a key, long bodies keyed off the I/O thread, and a cut Anthropic stream ending with its error event.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "router_test_util.h"

namespace tern::test {
namespace {

using json = nlohmann::json;

std::string messages_body(const std::string& user, int max_tokens, bool stream) {
  return json{{"model", "docs-llama-28m"}, {"max_tokens", max_tokens}, {"stream", stream},
              {"messages", json::array({{{"role", "user"}, {"content", user}}})}}
      .dump();
}

TEST(RouterFront, HostOriginAndCorsAreCheckedAsByServe) {
  auto a = start_replica();
  ASSERT_GT(a->port(), 0) << a->log();
  auto router = start_router("--cors-origin http://app.example --allowed-host tern.internal --replica " + a->url());
  ASSERT_GT(router->port(), 0) << router->log();
  const int port = router->port();
  auto call = [&](const std::string& method, const std::string& path, const std::string& host,
                  const std::string& extra, const std::string& body = "") {
    std::string req = method + " " + path + " HTTP/1.1\r\nHost: " + host + "\r\nConnection: close\r\n" + extra;
    if (method == "POST") req += "Content-Type: application/json\r\nContent-Length: " + std::to_string(body.size()) + "\r\n";
    return parse_http(send_and_read(port, req + "\r\n" + body, 120));
  };
  // DNS rebinding: a foreign name for a loopback router; --allowed-host adds one.
  const HttpResult foreign = call("GET", "/health", "evil.example", "");
  EXPECT_EQ(foreign.status, 403);
  EXPECT_NE(foreign.body.find("host_not_allowed"), std::string::npos) << foreign.body;
  EXPECT_EQ(call("GET", "/health", "tern.internal:8080", "").status, 200);

  // A cross-site page not listed is refused; a listed one gets its preflight and the CORS headers on
  // every answer, whole or streamed (the Origin is the router's to judge: it is not forwarded).
  const HttpResult refused = call("POST", "/v1/chat/completions", "127.0.0.1", "Origin: http://other.example\r\n",
                                  chat_body("hi", 2, false));
  EXPECT_EQ(refused.status, 403);
  EXPECT_NE(refused.body.find("origin_not_allowed"), std::string::npos) << refused.body;
  const std::string origin = "Origin: http://app.example\r\n";
  const HttpResult pre = call("OPTIONS", "/v1/chat/completions", "127.0.0.1",
                              origin + "Access-Control-Request-Method: POST\r\n");
  EXPECT_EQ(pre.status, 204) << pre.head;
  EXPECT_EQ(header_value(pre, "access-control-allow-origin"), "http://app.example");
  EXPECT_NE(header_value(pre, "access-control-allow-headers").find("Authorization"), std::string::npos);
  for (bool stream : {false, true}) {
    const HttpResult r = call("POST", "/v1/chat/completions", "127.0.0.1", origin, chat_body("hi", 3, stream));
    EXPECT_EQ(r.status, 200) << r.body;
    EXPECT_EQ(header_value(r, "access-control-allow-origin"), "http://app.example") << r.head;
    EXPECT_EQ(header_value(r, "x-tern-replica"), a->url());
  }
}

TEST(RouterFront, KeyAsXApiKeyAnthropicErrorsAndPublicMetrics) {
  auto a = start_replica(0, "--api-key sekret --host 127.0.0.1");
  ASSERT_GT(a->port(), 0) << a->log();
  // Without --host, a router with a key listens on every interface, as `tern serve` does (and says so).
  auto router = start_router("--api-key sekret --metrics-public --replica " + a->url());
  ASSERT_GT(router->port(), 0) << router->log();
  EXPECT_NE(router->log().find("on http://0.0.0.0:"), std::string::npos) << router->log();
  const int port = router->port();

  // Anthropic's clients send the key as x-api-key.
  const HttpResult ok = http_call(port, "POST", "/v1/messages", messages_body("hi", 3, false), "x-api-key: sekret\r\n");
  ASSERT_EQ(ok.status, 200) << ok.body;
  EXPECT_EQ(json::parse(ok.body).value("type", ""), "message") << ok.body;
  const HttpResult bearer = http_call(port, "POST", "/v1/messages", messages_body("hi", 3, false),
                                      "Authorization: Bearer sekret\r\n");
  EXPECT_EQ(bearer.status, 200) << bearer.body;

  // The router's own errors on /v1/messages are in Anthropic's shape, elsewhere in OpenAI's.
  const HttpResult no_key = http_call(port, "POST", "/v1/messages", messages_body("hi", 3, false));
  EXPECT_EQ(no_key.status, 401);
  const json e = json::parse(no_key.body, nullptr, false);
  ASSERT_FALSE(e.is_discarded()) << no_key.body;
  EXPECT_EQ(e.value("type", ""), "error") << no_key.body;
  EXPECT_EQ(e["error"].value("type", ""), "authentication_error") << no_key.body;
  const HttpResult wrong = http_call(port, "POST", "/v1/chat/completions", chat_body("hi", 2, false), "x-api-key: nope\r\n");
  EXPECT_EQ(wrong.status, 401);
  EXPECT_EQ(json::parse(wrong.body)["error"].value("code", ""), "invalid_api_key") << wrong.body;

  // --metrics-public: /metrics without the key; the API still needs it.
  EXPECT_EQ(http_call(port, "GET", "/metrics").status, 200);
  EXPECT_EQ(http_call(port, "GET", "/v1/models").status, 401);
  EXPECT_EQ(http_call(port, "GET", "/v1/models", "", "x-api-key: sekret\r\n").status, 200);
}

TEST(RouterFront, LimitsAreOptionsAndBadValuesAreErrors) {
  auto a = start_replica();
  ASSERT_GT(a->port(), 0) << a->log();
  auto router = start_router("--max-body-mb 0.01 --max-header-kb 1 --max-header-fields 20 --replica " + a->url());
  ASSERT_GT(router->port(), 0) << router->log();
  EXPECT_EQ(http_call(router->port(), "POST", "/v1/chat/completions", chat_body(std::string(20000, 'x'), 1, false)).status,
            413);
  EXPECT_EQ(http_call(router->port(), "GET", "/health", "", "X-Big: " + std::string(2000, 'y') + "\r\n").status, 431);
  std::string many;
  for (int i = 0; i < 30; ++i) many += "X-F" + std::to_string(i) + ": 1\r\n";
  EXPECT_EQ(http_call(router->port(), "GET", "/health", "", many).status, 431);
  EXPECT_EQ(http_call(router->port(), "GET", "/health").status, 200);

  for (const std::string bad : {"--max-header-kb 0", "--max-header-fields 1", "--header-timeout 0", "--body-timeout -1",
                                "--timeout 0"}) {
    const CommandResult r = run_tern("router --replica a:1 " + bad);
    EXPECT_EQ(r.exit_code, 1) << bad << "\n" << r.err;
    EXPECT_NE(r.err.find(bad.substr(0, bad.find(' '))), std::string::npos) << bad << "\n" << r.err;
  }
}

TEST(RouterFront, LongBodiesAreKeyedOnAWorkerAndKeepTheirAffinity) {
  auto a = start_replica();
  auto b = start_replica();
  ASSERT_GT(a->port(), 0) << a->log();
  ASSERT_GT(b->port(), 0) << b->log();
  auto router = start_router("--replica " + a->url() + " --replica " + b->url());
  ASSERT_GT(router->port(), 0) << router->log();
  // Past 64 KiB a body is parsed for its key on a worker thread (router.cpp), then routed on the I/O
  // thread like any other: each conversation's second send goes where its first went.
  for (int c = 0; c < 4; ++c) {
    const std::string long_turn = "conversation " + std::to_string(c) + " " + std::string(70000, 'a' + char(c));
    const HttpResult first = http_call(router->port(), "POST", "/v1/chat/completions", chat_body(long_turn, 1, false));
    const HttpResult again = http_call(router->port(), "POST", "/v1/chat/completions", chat_body(long_turn, 1, false));
    ASSERT_GT(first.status, 0);
    EXPECT_LT(first.status, 500) << first.body;
    EXPECT_EQ(again.status, first.status) << again.body;
    EXPECT_FALSE(header_value(first, "x-tern-replica").empty()) << first.head;
    EXPECT_EQ(header_value(again, "x-tern-replica"), header_value(first, "x-tern-replica"));
  }
  const std::string m = router_metrics(router->port());
  EXPECT_EQ(metric_value(m, "tern_router_requests_total"), 8);
  EXPECT_EQ(replica_metric(m, "tern_router_replica_affinity_spills_total", a->url()) +
                replica_metric(m, "tern_router_replica_affinity_spills_total", b->url()),
            0);
}

TEST(RouterFront, ACutAnthropicStreamEndsWithItsErrorEvent) {
  auto v = start_replica(0, "--test-fake-steps-per-s 20");  // 200 tokens: 10 s, long past the kill
  auto w = start_replica();
  ASSERT_GT(v->port(), 0) << v->log();
  ASSERT_GT(w->port(), 0) << w->log();
  auto router = start_router("--policy round-robin --replica " + v->url() + " --replica " + w->url());
  ASSERT_GT(router->port(), 0) << router->log();
  const int fd = connect_local(router->port(), 120);
  ASSERT_GE(fd, 0);
  const std::string body = messages_body("a stream on the replica that dies", 200, true);
  send_all(fd, "POST /v1/messages HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nContent-Type: application/json\r\n"
               "Content-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body);
  std::string raw;
  char buf[65536];
  while (raw.find("content_block_delta") == std::string::npos) {
    const ssize_t n = recv(fd, buf, sizeof(buf), 0);
    ASSERT_GT(n, 0) << raw << "\n" << router->log() << "\n" << v->log();
    raw.append(buf, size_t(n));
  }
  EXPECT_EQ(header_value(parse_http(raw), "x-tern-replica"), v->url());
  v->kill_now();
  read_to_end(fd, raw);
  const HttpResult cut = parse_http(raw);
  EXPECT_TRUE(cut.complete);
  const size_t at = cut.body.rfind("event: error\ndata: ");
  ASSERT_NE(at, std::string::npos) << cut.body;
  const size_t end = cut.body.find("\n\n", at);
  ASSERT_EQ(end + 2, cut.body.size()) << cut.body;  // the last event
  const json e = json::parse(cut.body.substr(at + 19, end - at - 19), nullptr, false);
  EXPECT_EQ(e.value("type", ""), "error") << cut.body;
  EXPECT_EQ(e["error"].value("type", ""), "api_error") << cut.body;
  EXPECT_EQ(cut.body.find("[DONE]"), std::string::npos) << cut.body;  // Anthropic's streams have none
  EXPECT_EQ(metric_value(router_metrics(router->port()), "tern_router_cut_streams_total"), 1);
}

}  // namespace
}  // namespace tern::test
