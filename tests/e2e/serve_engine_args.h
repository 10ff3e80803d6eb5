// Which engine the e2e tests serve. The CPU model runner is not in this build yet, so the server runs the
// real engine (scheduler, paged KV, prefix cache, metrics) over its weightless test runner
// (--test-fake-engine: FakeModelRunner, deterministic tokens, no model compute). When the runner lands,
// this becomes "" and the same tests run docs-llama-28m for real.
#pragma once

namespace tern::test {
inline constexpr const char* kServeEngineArgs = "--test-fake-engine --test-fake-steps-per-s 1000";
inline constexpr const char* kServeModel = "docs-llama-28m";
}  // namespace tern::test
