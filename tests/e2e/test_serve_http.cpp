// tern serve's HTTP front over raw sockets (issue 14, items 13-15): pipelined requests answered in
// order, chunked bodies held to --max-body-mb, trailers accepted, malformed framing refused at once with
// a clean status and a close (never a hold until a timeout), header size / count limits, head and body
// deadlines, and 1,000 slow clients that do not keep real requests waiting.
// The server runs with --timeout 300: a front that held a connection until its socket timeout would hold
// it longer than these tests wait (60 s), so such a hang fails instead of passing late.
#include <gtest/gtest.h>

#include <atomic>
#include <nlohmann/json.hpp>

#include "serve_test_util.h"

namespace tern::test {
namespace {

using json = nlohmann::json;

constexpr const char* kFake = "--test-fake-engine --timeout 300 ";
constexpr int kWaitS = 60;

std::string head_only(const std::string& request_line_and_fields) {
  return request_line_and_fields + "Host: 127.0.0.1\r\n\r\n";
}

// One request on its own connection; the answer must come, and the server must close after it.
void expect_refused(int port, const std::string& bytes, int status, const std::string& what) {
  bool closed = false;
  const std::string r = send_and_read(port, bytes, kWaitS, &closed);
  EXPECT_EQ(http_status(r), status) << what << ": " << r.substr(0, 300);
  EXPECT_TRUE(closed) << what << ": the connection was not closed";
  EXPECT_NE(r.find("Connection: close"), std::string::npos) << what;
  const json body = json::parse(http_body(r), nullptr, false);
  EXPECT_TRUE(!body.is_discarded() && body.contains("error")) << what << ": " << http_body(r);
}

class ServeHttp : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { server_ = new ServerProcess(std::string(kFake) + "--max-body-mb 1"); }
  static void TearDownTestSuite() {
    delete server_;
    server_ = nullptr;
  }
  static ServerProcess* server_;
};
ServerProcess* ServeHttp::server_ = nullptr;

TEST_F(ServeHttp, PipelinedRequestsAreAnsweredInOrder) {
  ASSERT_GT(server_->port(), 0) << server_->log();
  const std::string three = head_only("GET /health HTTP/1.1\r\n") + head_only("GET /v1/models HTTP/1.1\r\n") +
                            "GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n";
  bool closed = false;
  const std::string r = send_and_read(server_->port(), three, kWaitS, &closed);
  EXPECT_TRUE(closed);
  ASSERT_EQ(count_responses(r), 3) << r;
  const size_t models = r.find("\"object\":\"list\"");
  ASSERT_NE(models, std::string::npos) << r;
  EXPECT_NE(r.find("{\"status\":\"ok\"}"), std::string::npos);
  EXPECT_LT(r.find("{\"status\":\"ok\"}"), models);      // first answer first
  EXPECT_GT(r.rfind("{\"status\":\"ok\"}"), models);     // third answer last
}

TEST_F(ServeHttp, ChunkedBodyCountsAgainstMaxBody) {
  // 2 MiB of JSON in 64 KiB chunks against --max-body-mb 1: refused, never parsed.
  std::string body = R"({"model":"docs-llama-28m","prompt":")" + std::string(2 << 20, 'a') + "\"}";
  std::string req = "POST /v1/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\n\r\n";
  for (size_t at = 0; at < body.size(); at += 65536) {
    const std::string piece = body.substr(at, 65536);
    char size[32];
    std::snprintf(size, sizeof(size), "%zx\r\n", piece.size());
    req += size + piece + "\r\n";
  }
  req += "0\r\n\r\n";
  expect_refused(server_->port(), req, 413, "2 MiB chunked body");
  // The same with Content-Length.
  expect_refused(server_->port(), post_raw("/v1/completions", body), 413, "2 MiB body with Content-Length");
}

TEST_F(ServeHttp, ChunkedBodyWithTrailerIsAccepted) {
  const std::string body = R"({"prompt":"hello"})";
  char size[32];
  std::snprintf(size, sizeof(size), "%zx\r\n", body.size());
  const std::string req = "POST /tokenize HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nTransfer-Encoding: chunked\r\n\r\n" +
                          std::string(size) + body + "\r\n0\r\nX-Checksum: 1234\r\n\r\n";
  const std::string r = send_and_read(server_->port(), req, kWaitS);
  ASSERT_EQ(http_status(r), 200) << r;
  EXPECT_NE(http_body(r).find("\"tokens\""), std::string::npos) << r;
}

TEST_F(ServeHttp, MalformedFramingIsRefusedAtOnce) {
  const int port = server_->port();
  expect_refused(port, head_only("GET /health HTTP/1.1\r\nNoColonHere\r\n"), 400, "header line without a colon");
  expect_refused(port, head_only("POST /v1/completions HTTP/1.1\r\n"), 411, "POST without a length");
  expect_refused(port, head_only("POST /v1/completions HTTP/1.1\r\nContent-Length: -5\r\n"), 400, "negative length");
  expect_refused(port, head_only("POST /v1/completions HTTP/1.1\r\nContent-Length: 18446744073709551617\r\n"), 400,
                 "length >= 2^64");
  expect_refused(port, head_only("POST /v1/completions HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n"), 501,
                 "gzip transfer coding");
  expect_refused(port, head_only("POST /v1/completions HTTP/1.1\r\nContent-Length: 2\r\nTransfer-Encoding: chunked\r\n"),
                 400, "length and chunked together");
  expect_refused(port, "GET /health HTTP/1.1\r\n\r\n", 400, "HTTP/1.1 without Host");
  // A TLS ClientHello sent to the plain-HTTP port.
  const unsigned char hello[] = {0x16, 0x03, 0x01, 0x00, 0xf4, 0x01, 0x00, 0x00, 0xf0, 0x03, 0x03, 0x5a, 0x11};
  expect_refused(port, std::string(reinterpret_cast<const char*>(hello), sizeof(hello)) + std::string(64, '\0'), 400,
                 "TLS hello");
  // Still serving.
  EXPECT_EQ(http_status(send_and_read(port, post_raw("/tokenize", R"({"prompt":"hi"})"), kWaitS)), 200);
}

TEST_F(ServeHttp, HeaderFloodIs431WithFlatMemory) {
  const int64_t rss0 = server_->rss_kib();
  const int fd = connect_local(server_->port(), kWaitS);
  ASSERT_GE(fd, 0);
  send_all(fd, "GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n");
  // Up to 300,000 header lines (~5 MB), stopping once the server answers or closes.
  std::string batch;
  for (int i = 0; i < 300; ++i) {
    batch.clear();
    for (int k = 0; k < 1000; ++k) batch += "X-Flood-" + std::to_string(i * 1000 + k) + ": v\r\n";
    if (send(fd, batch.data(), batch.size(), MSG_NOSIGNAL) <= 0) break;
    pollfd p{fd, POLLIN, 0};
    if (poll(&p, 1, 0) > 0) break;
  }
  std::string r;
  char buf[4096];
  for (ssize_t n; (n = recv(fd, buf, sizeof(buf), 0)) > 0;) r.append(buf, size_t(n));
  close(fd);
  EXPECT_EQ(http_status(r), 431) << r.substr(0, 300);
  EXPECT_LT(server_->rss_kib() - rss0, 16 * 1024) << "RSS " << rss0 << " -> " << server_->rss_kib() << " KiB";

  std::string many = "GET /health HTTP/1.1\r\n";
  for (int i = 0; i < 150; ++i) many += "X-F" + std::to_string(i) + ": v\r\n";
  expect_refused(server_->port(), head_only(many), 431, "150 header fields (default limit 100)");
}

TEST_F(ServeHttp, ExpectContinueGets100ThenTheAnswer) {
  const std::string body = R"({"prompt":"hi"})";
  const std::string req = "POST /tokenize HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nExpect: 100-continue\r\n"
                          "Content-Length: " + std::to_string(body.size()) + "\r\n\r\n";
  const int fd = connect_local(server_->port(), kWaitS);
  ASSERT_GE(fd, 0);
  send_all(fd, req);
  char buf[4096];
  const ssize_t n = recv(fd, buf, sizeof(buf), 0);
  ASSERT_GT(n, 0);
  EXPECT_EQ(std::string(buf, size_t(n)).rfind("HTTP/1.1 100", 0), 0u) << std::string(buf, size_t(n));
  send_all(fd, body);
  std::string r;
  for (ssize_t k; (k = recv(fd, buf, sizeof(buf), 0)) > 0;) r.append(buf, size_t(k));
  close(fd);
  EXPECT_NE(r.find("HTTP/1.1 200"), std::string::npos) << r;
}

TEST_F(ServeHttp, Http10StreamAndHeadRequests) {
  // HTTP/1.0 has no chunked coding: the stream is raw SSE ended by the close.
  const std::string body = R"({"model":"docs-llama-28m","prompt":"Hi","max_tokens":3,"stream":true})";
  bool closed = false;
  const std::string r = send_and_read(server_->port(),
                                      "POST /v1/completions HTTP/1.0\r\nContent-Length: " + std::to_string(body.size()) +
                                          "\r\n\r\n" + body,
                                      kWaitS, &closed);
  EXPECT_TRUE(closed);
  EXPECT_EQ(http_status(r), 200) << r;
  EXPECT_EQ(r.find("Transfer-Encoding"), std::string::npos) << r;
  EXPECT_EQ(r.substr(r.size() >= 14 ? r.size() - 14 : 0), "data: [DONE]\n\n") << r;
  // HEAD: the GET's headers, no body.
  const std::string h = send_and_read(server_->port(), head_only("HEAD /health HTTP/1.1\r\nConnection: close\r\n"), kWaitS);
  EXPECT_EQ(http_status(h), 200) << h;
  EXPECT_NE(h.find("Content-Length: 15"), std::string::npos) << h;
  EXPECT_EQ(http_body(h), "") << h;
}

TEST(ServeHttpDeadlines, SlowHeadAndSlowBodyGet408) {
  ServerProcess server(std::string(kFake) + "--header-timeout 1 --body-timeout 1");
  ASSERT_GT(server.port(), 0) << server.log();
  // One header byte every 200 ms keeps the socket busy, but the head as a whole is late.
  for (const bool body : {false, true}) {
    const int fd = connect_local(server.port(), kWaitS);
    ASSERT_GE(fd, 0);
    send_all(fd, body ? "POST /tokenize HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 1000\r\n\r\n{" : "GET /health HTTP/1.1\r\n");
    std::atomic<bool> stop{false};
    std::thread trickle([&] {
      while (!stop) {
        send(fd, "a", 1, MSG_NOSIGNAL);
        std::this_thread::sleep_for(std::chrono::milliseconds(200));
      }
    });
    std::string r;
    char buf[4096];
    for (ssize_t n; (n = recv(fd, buf, sizeof(buf), 0)) > 0;) r.append(buf, size_t(n));
    stop = true;
    trickle.join();
    close(fd);
    EXPECT_EQ(http_status(r), 408) << (body ? "body" : "head") << ": " << r.substr(0, 300);
  }
}

TEST(ServeHttpSlowClients, ThousandSlowClientsDoNotDelayRealRequests) {
  raise_fd_limit();
  // Head deadline far away: the server must hold every slow client and still answer.
  ServerProcess server(std::string(kFake) + "--header-timeout 600");
  ASSERT_GT(server.port(), 0) << server.log();
  constexpr int kSlow = 1000;
  std::vector<int> slow;
  for (int i = 0; i < kSlow; ++i) {
    const int fd = connect_local(server.port(), kWaitS);
    ASSERT_GE(fd, 0) << "connect " << i;
    send_all(fd, i % 2 ? "POST /v1/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: a"
                       : "POST /v1/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 100000\r\n\r\n{");
    slow.push_back(fd);
  }
  std::atomic<bool> stop{false};
  std::thread trickle([&] {
    while (!stop) {
      for (int fd : slow) send(fd, "a", 1, MSG_NOSIGNAL | MSG_DONTWAIT);
      for (int i = 0; i < 10 && !stop; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
  });
  int ok = 0;
  for (int i = 0; i < 10; ++i) {
    const std::string req = i % 2 ? "GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
                                  : post_raw("/v1/completions", R"({"model":"docs-llama-28m","prompt":"Hi","max_tokens":2})");
    if (http_status(send_and_read(server.port(), req, kWaitS)) != 200) break;  // one late answer is enough
    ok++;
  }
  auto metrics = server.client().Get("/metrics");
  stop = true;
  trickle.join();
  EXPECT_EQ(ok, 10);
  ASSERT_TRUE(metrics);
  EXPECT_GE(metric_value(metrics->body, "tern_http_connections_open"), kSlow);
  for (int fd : slow) close(fd);
}

TEST(ServeHttpSlowClients, PastMaxConnectionsTheOldestIdleOneGoes) {
  raise_fd_limit();
  ServerProcess server(std::string(kFake) + "--max-connections 64");
  ASSERT_GT(server.port(), 0) << server.log();
  std::vector<int> idle;
  for (int i = 0; i < 100; ++i) idle.push_back(connect_local(server.port(), kWaitS));
  const std::string r = send_and_read(server.port(), head_only("GET /health HTTP/1.1\r\nConnection: close\r\n"), kWaitS);
  EXPECT_EQ(http_status(r), 200) << r;
  // The first idle connection was closed to make room.
  char c;
  EXPECT_EQ(recv(idle[0], &c, 1, 0), 0);
  for (int fd : idle) close(fd);
}

}  // namespace
}  // namespace tern::test
