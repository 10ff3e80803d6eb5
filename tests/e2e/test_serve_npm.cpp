// tern serve driven by the official OpenAI node client (npm `openai`, pinned in tests/e2e/serve_npm).
// The pinned packages are installed into <working dir>/serve_npm (the build tree under ctest) the way the
// tokenizer parity test installs its own; the test skips only when npm/node are not on PATH.
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>

#include "serve_engine_args.h"
#include "serve_test_util.h"

namespace tern::test {
namespace {

namespace fs = std::filesystem;

bool on_path(const char* tool) {
  return std::system((std::string("command -v ") + tool + " >/dev/null 2>&1").c_str()) == 0;
}

void run_openai_client(const std::string& engine_args) {
  if (!on_path("npm") || !on_path("node")) GTEST_SKIP() << "npm/node not on PATH: the OpenAI client is not run";
  const std::string src = std::string(TERN_SOURCE_DIR) + "/tests/e2e/serve_npm";
  const std::string prefix = (fs::current_path() / "serve_npm").string();
  fs::create_directories(prefix);
  for (const char* f : {"package.json", "package-lock.json", "client.mjs"}) {
    fs::copy_file(src + "/" + f, prefix + "/" + f, fs::copy_options::overwrite_existing);
  }
  // Two tests may run at once under ctest -j: one installs, under a lock, while the other waits.
  const std::string install = "flock '" + prefix + ".lock' sh -c \"[ -f '" + prefix +
                          "/node_modules/openai/package.json' ] || npm ci --prefix '" + prefix +
                          "' --no-audit --no-fund --loglevel=error >'" + prefix + "/install.log' 2>&1\"";
  ASSERT_EQ(std::system(install.c_str()), 0) << "npm ci failed, see " << prefix << "/install.log";
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
