// How many KV blocks the engine's pool gets: EngineOptions::kv_memory_bytes / runner.kv_block_bytes(),
// or, when no budget is given, a default share of the machine's available memory. (The planner issue
// replaces the default with a computed plan.)
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>

#include "core/status.h"
#include "engine/engine.h"

namespace tern {

struct KvPoolPlan {
  int64_t num_blocks = 0;
  size_t block_bytes = 0;     // one block over all layers
  size_t budget_bytes = 0;    // what the blocks may use
  bool default_budget = false;
};

// MemAvailable from /proc/meminfo; nullopt when it cannot be read.
std::optional<size_t> available_memory_bytes();

// Default budget: 25% of available memory, at most 16 GiB (1 GiB when unknown). The pool never
// exceeds what max_running sequences of the full context could use.
Result<KvPoolPlan> plan_kv_pool(const ModelRunner& runner, const EngineOptions& options,
                                std::optional<size_t> available_bytes);

}  // namespace tern
