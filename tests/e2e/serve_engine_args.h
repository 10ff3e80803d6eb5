// Which engine the e2e tests serve. The serving engine (issue 5) is not in this build yet, so the server
// runs its clearly named test-only stand-in (--test-fake-engine: deterministic tokens from the real
// tokenizer, no model compute). When the engine lands, this becomes "" and the same tests run the model.
#pragma once

namespace tern::test {
inline constexpr const char* kServeEngineArgs = "--test-fake-engine --test-fake-steps-per-s 400";
inline constexpr const char* kServeModel = "docs-llama-28m";
}  // namespace tern::test
