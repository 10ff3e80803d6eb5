// The web page of `tern serve` (webui/): how / is served (gzip or not, --no-webui), and the page itself
// in a real browser: headless Chromium (Debian's `chromium`) driven by playwright-core (npm, pinned in
// tests/e2e/webui, installed with `npm ci` into the build tree). tests/e2e/webui/webui_test.mjs does the
// clicking: chat streaming and stop, rendering, conversations kept across a reload, the dashboard under
// load, and the API-key prompt. The browser tests skip when node/npm or chromium are not installed.
#include <gtest/gtest.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "serve_engine_args.h"
#include "serve_npm_util.h"
#include "serve_test_util.h"

namespace tern::test {
namespace {

namespace fs = std::filesystem;

constexpr const char* kFake = "--test-fake-engine ";

std::string header_of(const httplib::Result& r, const char* name) {
  return r ? r->get_header_value(name) : std::string();
}

TEST(WebUi, ServesThePageGzippedOrPlain) {
  ServerProcess server(kFake);
  ASSERT_GT(server.port(), 0) << server.log();
  auto c = server.client();
  c.set_decompress(false);
  auto plain = c.Get("/", {{"Accept-Encoding", "identity"}});
  ASSERT_TRUE(plain);
  if (plain->status == 503) GTEST_SKIP() << "the web UI was not built into tern (no node / webui/node_modules): " << plain->body;
  EXPECT_EQ(plain->status, 200);
  EXPECT_EQ(header_of(plain, "Content-Type"), "text/html; charset=utf-8");
  EXPECT_EQ(header_of(plain, "Content-Encoding"), "");
  EXPECT_NE(plain->body.find("<!doctype html>"), std::string::npos);
  // Self-contained: a script allowed by its hash, requests to this server only, nothing from a CDN.
  EXPECT_NE(plain->body.find("connect-src 'self'"), std::string::npos);
  EXPECT_EQ(plain->body.find("<script src"), std::string::npos);
  EXPECT_EQ(plain->body.find("<link rel=\"stylesheet\""), std::string::npos);

  auto gz = c.Get("/", {{"Accept-Encoding", "gzip, deflate, br"}});
  ASSERT_TRUE(gz);
  EXPECT_EQ(gz->status, 200);
  EXPECT_EQ(header_of(gz, "Content-Encoding"), "gzip");
  ASSERT_GT(gz->body.size(), 2u);
  EXPECT_EQ(uint8_t(gz->body[0]), 0x1f);  // the gzip magic
  EXPECT_EQ(uint8_t(gz->body[1]), 0x8b);
  EXPECT_LT(gz->body.size(), plain->body.size() / 2);

  auto upper = c.Get("/", {{"Accept-Encoding", "identity;q=0.5, GZIP;q=0.8"}});
  ASSERT_TRUE(upper);
  EXPECT_EQ(header_of(upper, "Content-Encoding"), "gzip");
  EXPECT_EQ(upper->body, gz->body);

  auto refused = c.Get("/", {{"Accept-Encoding", "gzip;q=0, identity"}});
  ASSERT_TRUE(refused);
  EXPECT_EQ(header_of(refused, "Content-Encoding"), "");
  EXPECT_EQ(refused->body, plain->body);

  auto index = c.Get("/index.html", {{"Accept-Encoding", "identity"}});
  ASSERT_TRUE(index);
  EXPECT_EQ(index->body, plain->body);
  auto post = c.Post("/", "{}", "application/json");
  ASSERT_TRUE(post);
  EXPECT_EQ(post->status, 405);
}

TEST(WebUi, ThePageNeedsNoKeyButTheApiDoes) {
  ServerProcess server(std::string(kFake) + "--api-key sekrit --host 127.0.0.1");
  ASSERT_GT(server.port(), 0) << server.log();
  auto c = server.client();
  auto page = c.Get("/");
  ASSERT_TRUE(page);
  EXPECT_TRUE(page->status == 200 || page->status == 503) << page->status;
  auto models = c.Get("/v1/models");
  ASSERT_TRUE(models);
  EXPECT_EQ(models->status, 401);
}

TEST(WebUi, NoWebuiAnswers404) {
  ServerProcess server(std::string(kFake) + "--no-webui");
  ASSERT_GT(server.port(), 0) << server.log();
  auto c = server.client();
  for (const char* path : {"/", "/index.html"}) {
    auto r = c.Get(path);
    ASSERT_TRUE(r) << path;
    EXPECT_EQ(r->status, 404) << path;
  }
  auto health = c.Get("/health");
  ASSERT_TRUE(health);
  EXPECT_EQ(health->status, 200);
}

// The dashboard's reading of /metrics (webui/src/metrics.js), in node, on this server's own text.
TEST(WebUi, DashboardReadsTheServersMetrics) {
  if (!on_path("node")) GTEST_SKIP() << "node not on PATH: webui/test/metrics_check.mjs is not run";
  ServerProcess server(kFake);
  ASSERT_GT(server.port(), 0) << server.log();
  auto c = server.client();
  auto done = c.Post("/v1/completions", R"({"model":"docs-llama-28m","prompt":"hi","max_tokens":5})", "application/json");
  ASSERT_TRUE(done);
  ASSERT_EQ(done->status, 200) << done->body;
  auto metrics = c.Get("/metrics");
  ASSERT_TRUE(metrics);
  TempDir dir;
  {
    std::ofstream(dir.file("metrics.txt")) << metrics->body;
  }
  const std::string cmd = "node '" + std::string(TERN_SOURCE_DIR) + "/webui/test/metrics_check.mjs' '" +
                          dir.file("metrics.txt") + "' >'" + dir.file("out") + "' 2>&1";
  EXPECT_EQ(std::system(cmd.c_str()), 0) << slurp_file(dir.file("out")) << "\n/metrics:\n" << metrics->body;
  EXPECT_NE(slurp_file(dir.file("out")).find("ALL OK"), std::string::npos) << slurp_file(dir.file("out"));
}

// Chromium as Debian installs it ("" when absent).
std::string find_chromium() {
  for (const char* p : {"/usr/bin/chromium", "/usr/bin/chromium-browser"}) {
    if (fs::exists(p)) return p;
  }
  return "";
}

// tests/e2e/webui installed into <working dir>/webui_e2e with `npm ci` (once per lock file, under a lock).
std::string install_webui_npm() {
  const std::string src = std::string(TERN_SOURCE_DIR) + "/tests/e2e/webui";
  const std::string prefix = (fs::current_path() / "webui_e2e").string();
  fs::create_directories(prefix);
  const std::string install =
      "flock '" + prefix + ".lock' sh -c \"cd '" + prefix + "' && for f in package.json package-lock.json "
      "webui_test.mjs seed.mjs; do cp '" + src + "'/\\$f .; done && (cmp -s package-lock.json "
      "node_modules/.tern-lock || (npm ci --no-audit --no-fund --loglevel=error >install.log 2>&1 && cp "
      "package-lock.json node_modules/.tern-lock))\"";
  EXPECT_EQ(std::system(install.c_str()), 0) << "npm ci failed, see " << prefix << "/install.log";
  return prefix;
}

// Runs webui_test.mjs against a server started with `server_args`; `key`: the server's --api-key.
void run_browser_test(const std::string& server_args, const std::string& key) {
  if (!on_path("npm") || !on_path("node")) GTEST_SKIP() << "npm/node not on PATH: the browser test is not run";
  const std::string chromium = find_chromium();
  if (chromium.empty()) GTEST_SKIP() << "chromium is not installed (Debian package `chromium`): the browser test is not run";
  const std::string prefix = install_webui_npm();
  if (::testing::Test::HasFailure()) return;
  ServerProcess server(server_args + (key.empty() ? "" : " --api-key " + key + " --host 127.0.0.1"));
  ASSERT_GT(server.port(), 0) << server.log();
  auto probe = server.client().Get("/");
  ASSERT_TRUE(probe);
  if (probe->status == 503) GTEST_SKIP() << "the web UI was not built into tern: " << probe->body;
  const std::string out_file = prefix + "/run" + std::to_string(server.port()) + ".out";
  const std::string cmd = "cd '" + prefix + "' && node webui_test.mjs --url http://127.0.0.1:" +
                          std::to_string(server.port()) + " --chromium '" + chromium + "'" +
                          (key.empty() ? "" : " --key " + key) + " >'" + out_file + "' 2>&1";
  const int rc = std::system(cmd.c_str());
  const std::string out = slurp_file(out_file);
  EXPECT_EQ(rc, 0) << out << "\nserver log:\n" << server.log();
  EXPECT_NE(out.find("ALL OK"), std::string::npos) << out;
}

// docs-llama-28m computed for real: text streams in, the stop button cancels it, the dashboard moves.
TEST(WebUiBrowser, ChatStreamsStopsAndDashboardMovesUnderLoad) {
  run_browser_test(std::string(kServeEngineArgs), "");
}

// --api-key: the page asks for the key, refuses a wrong one, then works with the right one.
TEST(WebUiBrowser, AsksForTheApiKey) { run_browser_test(std::string(kFake) + "--test-fake-steps-per-s 100", "e2e-webui-key"); }

}  // namespace
}  // namespace tern::test
