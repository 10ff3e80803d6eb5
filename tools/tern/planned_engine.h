// One model of memory for the whole program (issue 8): the commands that start a serving engine
// (`tern serve`, `tern bench offline`) size its KV pool and its batch limit with the planner's
// arithmetic (plan/memory_budget.h) unless the user gives them, and print where the numbers come from.
#pragma once

#include "engine/engine.h"
#include "engine/model_runner.h"
#include "model/model.h"

namespace tern::cli {

// Fills options.kv_memory_bytes when it is 0: what this host has available after the weights, the
// step's activations and a headroom (capped at a quarter of what is available, 16 GiB at most: a CPU
// server shares its machine). Fails with the planner's reason when the model cannot fit.
void plan_kv_pool_budget(const Model& model, EngineOptions& options);

// Lowers options.max_running to the pool's block count: every running sequence holds at least one
// block, so more sequences than blocks would only preempt each other. Fails when not one block fits.
void plan_batch_limit(const ModelRunner& runner, EngineOptions& options);

}  // namespace tern::cli
