// tern serve driven by the official OpenAI node client (npm `openai`, pinned in tests/e2e/serve_npm).
// The pinned packages are installed by serve_npm_util.h; the test skips only when npm/node are not on PATH.
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>

#include "serve_engine_args.h"
#include "serve_npm_util.h"
#include "serve_test_util.h"

namespace tern::test {
namespace {

namespace fs = std::filesystem;

void run_openai_client(const std::string& engine_args) {
  if (!on_path("npm") || !on_path("node")) GTEST_SKIP() << "npm/node not on PATH: the OpenAI client is not run";
  const std::string prefix = install_serve_npm();
  if (::testing::Test::HasFailure()) return;
  ServerProcess server(engine_args + " --api-key e2e-key --host 127.0.0.1");
  ASSERT_GT(server.port(), 0) << server.log();
  const std::string out_file = prefix + "/client" + std::to_string(server.port()) + ".out";
  const std::string cmd = "node '" + prefix + "/client.mjs' http://127.0.0.1:" + std::to_string(server.port()) +
                          " e2e-key " + kServeModel + " >'" + out_file + "' 2>&1";
  const int rc = std::system(cmd.c_str());
  const std::string out = slurp_file(out_file);
  EXPECT_EQ(rc, 0) << out << "\nserver log:\n" << server.log();
  EXPECT_NE(out.find("ALL OK"), std::string::npos) << out;
}

// docs-llama-28m computed for real (engine + CPU model runner), as every server test here.
TEST(ServeOpenAiClient, EveryEndpointAndMode) { run_openai_client(kServeEngineArgs); }

}  // namespace
}  // namespace tern::test
