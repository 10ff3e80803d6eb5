// A stand-in for the serving engine, for tests only: no model, deterministic tokens on its own thread
// at a fixed rate, the real Engine contract (callbacks on the engine thread, cancel frees at once,
// stop strings held back, metrics with KV blocks in use). The HTTP layer's tests run against it, and
// `tern serve --test-fake-engine` serves it so e2e tests can exercise HTTP without model compute.
#pragma once

#include <memory>

#include "engine/engine.h"

namespace tern {

struct FakeEngineOptions {
  double tokens_per_s = 200;    // per running request: each step gives every running request one token
  int64_t max_context = 2048;
  int block_size = 16;
  int64_t kv_blocks_total = 1 << 14;
  int64_t max_running = 256;    // the rest wait
};

// tokenizer may be null: then token i of a request spells " t<id>".
std::unique_ptr<Engine> make_fake_engine(const Tokenizer* tokenizer, const FakeEngineOptions& options);

}  // namespace tern
