// Which engine the e2e server tests run: the real one on docs-llama-28m (CpuModelRunner: scheduler,
// paged KV, prefix cache and model compute). One thread per server: ctest runs tests side by side on
// small CI machines, and spinning thread pools of two processes on the same cores would only slow each
// other down. The weightless runner (--test-fake-engine) stays for tests that need a step rate of their own.
#pragma once

namespace tern::test {
inline constexpr const char* kServeEngineArgs = "-t 1";
inline constexpr const char* kServeModel = "docs-llama-28m";
}  // namespace tern::test
