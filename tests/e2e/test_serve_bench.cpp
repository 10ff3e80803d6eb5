// tern bench serve against a live tern serve: every request completes, the JSON carries the latency
// percentiles and throughput per concurrency level, and the SVG plot is written.
#include <gtest/gtest.h>

#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <nlohmann/json.hpp>
#include <thread>

#include "serve_engine_args.h"
#include "serve_test_util.h"

namespace tern::test {
namespace {

TEST(ServeBench, SweepReportsLatencyAndThroughputAsJsonAndSvg) {
  ServerProcess server{std::string(kServeEngineArgs)};
  ASSERT_GT(server.port(), 0) << server.log();
  TempDir dir;
  const auto r = run_tern("bench serve --url http://127.0.0.1:" + std::to_string(server.port()) +
                          " --concurrency 1,3 --prompt-tokens 32 --output-tokens 8 --requests 6 --json --plot '" +
                          dir.file("sweep.svg") + "'");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto j = nlohmann::json::parse(r.out, nullptr, false);
  ASSERT_FALSE(j.is_discarded()) << r.out;
  EXPECT_EQ(j["model"], kServeModel);  // found through /v1/models
  ASSERT_EQ(j["levels"].size(), 2u);
  for (const auto& level : j["levels"]) {
    EXPECT_EQ(level["completed"], 6) << level.dump();
    EXPECT_EQ(level["failed"], 0);
    EXPECT_EQ(level["output_tokens"], 6 * 8);
    EXPECT_GT(level["output_tokens_per_s"].get<double>(), 0);
    for (const char* k : {"ttft_ms", "itl_ms", "e2e_ms"}) {
      EXPECT_GT(level[k]["p50"].get<double>(), 0) << k;
      EXPECT_LE(level[k]["p50"].get<double>(), level[k]["p99"].get<double>()) << k;
    }
  }
  const std::string svg = slurp_file(dir.file("sweep.svg"));
  EXPECT_NE(svg.find("<svg"), std::string::npos);
  EXPECT_NE(svg.find("c=3"), std::string::npos);

  const auto bad = run_tern("bench serve --url http://127.0.0.1:" + std::to_string(server.port()) +
                            " --concurrency 1,x");
  EXPECT_EQ(bad.exit_code, 1);
  EXPECT_NE(bad.err.find("--concurrency"), std::string::npos) << bad.err;

  // One request count per level.
  const auto per_level = run_tern("bench serve --url http://127.0.0.1:" + std::to_string(server.port()) +
                                  " --concurrency 1,2 --prompt-tokens 8 --output-tokens 2 --requests 1,4 --json");
  ASSERT_EQ(per_level.exit_code, 0) << per_level.err;
  const auto pj = nlohmann::json::parse(per_level.out, nullptr, false);
  ASSERT_FALSE(pj.is_discarded()) << per_level.out;
  EXPECT_EQ(pj["levels"][0]["completed"], 1);
  EXPECT_EQ(pj["levels"][1]["completed"], 4);
  const auto mismatch = run_tern("bench serve --url http://127.0.0.1:" + std::to_string(server.port()) +
                                 " --concurrency 1,2,4 --requests 1,4");
  EXPECT_EQ(mismatch.exit_code, 1);
  EXPECT_NE(mismatch.err.find("one per concurrency level"), std::string::npos) << mismatch.err;
}

// A server that answers each request and then closes the connection without saying so (no
// `Connection: close`), as llama-server does after a stream: the client's kept-alive connection is
// stale at the next request. Every request must still complete (one resend on a new connection), not
// every second one fail with "HTTP error: Read".
class ClosingServer {
 public:
  ClosingServer() {
    fd_ = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
    socklen_t len = sizeof(addr);
    getsockname(fd_, reinterpret_cast<sockaddr*>(&addr), &len);
    port_ = ntohs(addr.sin_port);
    listen(fd_, 16);
    thread_ = std::thread([this] { serve(); });
  }
  ~ClosingServer() {
    stop_ = true;
    shutdown(fd_, SHUT_RDWR);
    close(fd_);
    thread_.join();
  }
  int port() const { return port_; }
  int connections() const { return connections_; }

 private:
  void serve() {
    while (!stop_) {
      const int c = accept(fd_, nullptr, nullptr);
      if (c < 0) return;
      connections_++;
      std::string req;
      char buf[4096];
      size_t head_end = std::string::npos;
      size_t body_len = 0;
      while (true) {
        if (head_end != std::string::npos && req.size() >= head_end + 4 + body_len) break;
        const ssize_t n = recv(c, buf, sizeof(buf), 0);
        if (n <= 0) break;
        req.append(buf, size_t(n));
        if (head_end == std::string::npos && (head_end = req.find("\r\n\r\n")) != std::string::npos) {
          const auto cl = req.find("Content-Length: ");
          if (cl != std::string::npos && cl < head_end) body_len = std::stoul(req.substr(cl + 16));
        }
      }
      const bool models = req.rfind("GET /v1/models", 0) == 0;
      const std::string body = models ? R"({"object":"list","data":[{"id":"closing"}]})"
                                      : "data: {\"choices\":[{\"text\":\"a\"}]}\n\n"
                                        "data: {\"choices\":[{\"text\":\"b\"}]}\n\n"
                                        "data: {\"choices\":[],\"usage\":{\"completion_tokens\":2}}\n\n"
                                        "data: [DONE]\n\n";
      const std::string head = std::string("HTTP/1.1 200 OK\r\nContent-Type: ") +
                               (models ? "application/json" : "text/event-stream") +
                               "\r\nContent-Length: " + std::to_string(body.size()) + "\r\n\r\n";
      send_all(c, head + body);
      close(c);
    }
  }
  int fd_ = -1, port_ = 0;
  std::atomic<bool> stop_{false};
  std::atomic<int> connections_{0};
  std::thread thread_;
};

TEST(ServeBench, AServerThatClosesEachConnectionLosesNoRequest) {
  ClosingServer server;
  const auto r = run_tern("bench serve --url http://127.0.0.1:" + std::to_string(server.port()) +
                          " --concurrency 1 --prompt-tokens 4 --output-tokens 2 --requests 5 --json");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto j = nlohmann::json::parse(r.out, nullptr, false);
  ASSERT_FALSE(j.is_discarded()) << r.out;
  EXPECT_EQ(j["levels"][0]["completed"], 5) << j.dump();
  EXPECT_EQ(j["levels"][0]["failed"], 0) << j.dump();
  EXPECT_EQ(j["levels"][0]["output_tokens"], 5 * 2);
  EXPECT_GE(server.connections(), 5);  // the server really closed: one connection per request at least
}

}  // namespace
}  // namespace tern::test
