// The pinned npm packages of tests/e2e/serve_npm (OpenAI and Anthropic clients, Vercel AI SDK, Qwen3 tokenizer +
// template),
// installed once into <working dir>/serve_npm (the build tree under ctest) with `npm ci` from the lock file,
// the way the tokenizer parity test installs its own. Shared by the npm-driven server tests.
#pragma once

#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <string>

namespace tern::test {

inline bool on_path(const char* tool) {
  return std::system((std::string("command -v ") + tool + " >/dev/null 2>&1").c_str()) == 0;
}

// The install folder, after `npm ci` ran for the current lock file (a stamp copy of it says so).
// Two tests may run at once under ctest -j: one installs, under a lock, while the other waits.
inline std::string install_serve_npm() {
  namespace fs = std::filesystem;
  const std::string src = std::string(TERN_SOURCE_DIR) + "/tests/e2e/serve_npm";
  const std::string prefix = (fs::current_path() / "serve_npm").string();
  fs::create_directories(prefix);
  const std::string install =
      "flock '" + prefix + ".lock' sh -c \"cd '" + prefix + "' && for f in package.json package-lock.json client.mjs "
      "tools.mjs anthropic.mjs checks.mjs; do cp '" + src + "'/\\$f .; done && (cmp -s package-lock.json node_modules/.tern-lock || (npm ci "
      "--no-audit --no-fund --loglevel=error >install.log 2>&1 && cp package-lock.json node_modules/.tern-lock))\"";
  EXPECT_EQ(std::system(install.c_str()), 0) << "npm ci failed, see " << prefix << "/install.log";
  return prefix;
}

}  // namespace tern::test
