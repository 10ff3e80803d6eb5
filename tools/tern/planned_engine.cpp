#include "planned_engine.h"

#include <fmt/format.h>

#include <algorithm>
#include <cstdio>

#include "cli_common.h"
#include "core/kv_dtype.h"
#include "plan/memory_budget.h"
#include "plan/precision.h"

namespace tern::cli {

void plan_kv_pool_budget(const Model& model, EngineOptions& eo) {
  if (eo.kv_memory_bytes != 0) return;
  const TransformerWeights& w = model.weights();
  double weight_bytes = double(model.weight_bytes_per_token());
  if (w.embed.data != w.lm_head.data) weight_bytes += double(w.embed.bytes());  // gathered, but resident
  const plan::KvPrecision kv = plan::kv_precision(eo.kv_dtype);
  plan::KvBudgetOptions ko;
  ko.kv_elem_bytes = kv.bytes;
  ko.kv_scale_bytes_per_head = kv.scale_bytes_per_head;
  ko.max_sequences = eo.max_running;
  ko.chunk_tokens = eo.max_step_tokens;
  ko.weight_bytes = weight_bytes;
  const plan::HostMemory host = unwrap(plan::read_host_memory());
  const plan::KvBudget b = unwrap(plan::default_kv_budget(model.config(), host, ko));
  const size_t share = std::min(size_t(host.available_bytes / 4), size_t(16) << 30);
  fmt::print(stderr, "[tern] KV pool ({}): {}{}\n", kv_dtype_name(eo.kv_dtype), b.explanation,
             b.bytes > share ? fmt::format("; capped at a quarter of available memory, {} MiB", share >> 20) : "");
  eo.kv_memory_bytes = std::min(b.bytes, share);
}

void plan_batch_limit(const ModelRunner& runner, EngineOptions& eo) {
  const size_t block_bytes = runner.kv_block_bytes(eo.block_size, eo.kv_dtype);
  const int64_t pool_blocks = block_bytes ? int64_t(eo.kv_memory_bytes / block_bytes) : 0;
  if (pool_blocks < 1) {
    fail(fmt::format("the KV budget ({} bytes) holds no block of {} tokens ({} bytes)", eo.kv_memory_bytes,
                     eo.block_size, block_bytes));
  }
  if (pool_blocks < eo.max_running) {
    fmt::print(stderr, "[tern] running at most {} sequences at once (the KV pool holds {} blocks of {} tokens)\n",
               pool_blocks, pool_blocks, eo.block_size);
    eo.max_running = pool_blocks;
  }
}

}  // namespace tern::cli
