// A web page the user visits must not drive their local tern (issue 14, item 18): cross-site requests
// are refused unless --cors-origin allows the Origin (then CORS headers and preflights work), a foreign
// Host on a loopback bind is refused (DNS rebinding), /metrics needs the API key unless --metrics-public,
// and --api-key alone warns that it listens on every interface.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "serve_test_util.h"

namespace tern::test {
namespace {

using json = nlohmann::json;

constexpr int kWaitS = 60;
const std::string kBody = R"({"model":"docs-llama-28m","prompt":"Hi","max_tokens":2})";

std::string request(const std::string& method, const std::string& path, const std::string& headers,
                    const std::string& body = "") {
  std::string r = method + " " + path + " HTTP/1.1\r\nConnection: close\r\n" + headers;
  if (!body.empty() || method == "POST") r += "Content-Length: " + std::to_string(body.size()) + "\r\n";
  return r + "\r\n" + body;
}

std::string error_code_of(const std::string& response) {
  const json j = json::parse(http_body(response), nullptr, false);
  return j.is_discarded() || !j.contains("error") || !j["error"]["code"].is_string() ? "" : j["error"]["code"].get<std::string>();
}

TEST(ServeSecurity, CrossSiteRequestsAreRefusedUnlessAllowed) {
  ServerProcess server("--test-fake-engine --cors-origin http://app.example");
  ASSERT_GT(server.port(), 0) << server.log();
  const int port = server.port();
  const std::string host = "Host: 127.0.0.1:" + std::to_string(port) + "\r\n";
  // A "simple" cross-site POST (text/plain: no preflight) from a page the user visits.
  const std::string evil = send_and_read(
      port, request("POST", "/v1/completions", host + "Origin: http://evil.example\r\nContent-Type: text/plain\r\n", kBody),
      kWaitS);
  EXPECT_EQ(http_status(evil), 403) << evil;
  EXPECT_EQ(error_code_of(evil), "origin_not_allowed");
  // The allowed origin: the answer carries the CORS header.
  const std::string app = send_and_read(
      port, request("POST", "/v1/completions", host + "Origin: http://app.example\r\nContent-Type: application/json\r\n", kBody),
      kWaitS);
  EXPECT_EQ(http_status(app), 200) << app;
  EXPECT_NE(app.find("Access-Control-Allow-Origin: http://app.example"), std::string::npos) << app;
  // Its preflight.
  const std::string pre = send_and_read(
      port, request("OPTIONS", "/v1/chat/completions", host + "Origin: http://app.example\r\nAccess-Control-Request-Method: POST\r\n"
                                                       "Access-Control-Request-Headers: authorization, content-type\r\n"),
      kWaitS);
  EXPECT_EQ(http_status(pre), 204) << pre;
  EXPECT_NE(pre.find("Access-Control-Allow-Methods:"), std::string::npos) << pre;
  EXPECT_NE(pre.find("Authorization"), std::string::npos) << pre;
  // A page this server served itself (same origin) and a client that is not a browser (no Origin).
  const std::string same = send_and_read(
      port, request("POST", "/v1/completions", host + "Origin: http://127.0.0.1:" + std::to_string(port) + "\r\n", kBody), kWaitS);
  EXPECT_EQ(http_status(same), 200) << same;
  EXPECT_EQ(http_status(send_and_read(port, request("POST", "/v1/completions", host, kBody), kWaitS)), 200);
}

TEST(ServeSecurity, ForeignHostIsRefusedOnALoopbackBind) {
  ServerProcess server("--test-fake-engine --allowed-host tern.lan");
  ASSERT_GT(server.port(), 0) << server.log();
  const int port = server.port();
  // DNS rebinding: the attacker's name now resolves to 127.0.0.1, and the browser sends it as Host.
  const std::string rebound = send_and_read(port, request("POST", "/v1/completions", "Host: attacker.example:" +
                                                                                      std::to_string(port) + "\r\n", kBody),
                                            kWaitS);
  EXPECT_EQ(http_status(rebound), 403) << rebound;
  EXPECT_EQ(error_code_of(rebound), "host_not_allowed");
  for (const std::string h : {"localhost", "127.0.0.1", "[::1]", "tern.lan"}) {
    const std::string ok = send_and_read(port, request("GET", "/health", "Host: " + h + ":" + std::to_string(port) + "\r\n"), kWaitS);
    EXPECT_EQ(http_status(ok), 200) << h << ": " << ok;
  }
}

TEST(ServeSecurity, MetricsNeedTheKeyUnlessPublic) {
  ServerProcess keyed("--test-fake-engine --api-key sekret --host 127.0.0.1");
  ASSERT_GT(keyed.port(), 0) << keyed.log();
  auto cli = keyed.client();
  auto none = cli.Get("/metrics");
  ASSERT_TRUE(none);
  EXPECT_EQ(none->status, 401);
  auto with = cli.Get("/metrics", {{"Authorization", "Bearer sekret"}});
  ASSERT_TRUE(with);
  EXPECT_EQ(with->status, 200);
  auto almost = cli.Get("/v1/models", {{"Authorization", "Bearer sekreT"}});
  ASSERT_TRUE(almost);
  EXPECT_EQ(almost->status, 401);
  auto longer = cli.Get("/v1/models", {{"Authorization", "Bearer sekret2"}});
  ASSERT_TRUE(longer);
  EXPECT_EQ(longer->status, 401);

  ServerProcess open("--test-fake-engine --api-key sekret --host 127.0.0.1 --metrics-public");
  ASSERT_GT(open.port(), 0) << open.log();
  auto pub = open.client().Get("/metrics");
  ASSERT_TRUE(pub);
  EXPECT_EQ(pub->status, 200);
}

TEST(ServeSecurity, ApiKeyAloneWarnsItListensOnEveryInterface) {
  ServerProcess server("--test-fake-engine --api-key sekret");
  ASSERT_GT(server.port(), 0) << server.log();
  const std::string log = server.log();
  EXPECT_NE(log.find("warning: --api-key without --host: listening on 0.0.0.0"), std::string::npos) << log;
  // A non-loopback bind takes any Host (the key guards it).
  const std::string r = send_and_read(server.port(), request("GET", "/health", "Host: some.name\r\n"), kWaitS);
  EXPECT_EQ(http_status(r), 200) << r;
}

}  // namespace
}  // namespace tern::test
