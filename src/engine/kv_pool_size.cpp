#include "engine/kv_pool_size.h"

#include <fmt/format.h>

#include <algorithm>
#include <sstream>

#include "core/mapped_file.h"
#include "engine/kv_block_manager.h"

namespace tern {

std::optional<size_t> available_memory_bytes() {
  auto text = read_text_file("/proc/meminfo");
  if (!text.is_ok()) return std::nullopt;
  std::istringstream in(*text);
  std::string key, unit;
  size_t value = 0;
  while (in >> key >> value) {
    std::getline(in, unit);
    if (key == "MemAvailable:") return value * 1024;  // the file says kB (KiB)
  }
  return std::nullopt;
}

Result<KvPoolPlan> plan_kv_pool(const ModelRunner& runner, const EngineOptions& options,
                                std::optional<size_t> available_bytes) {
  KvPoolPlan plan;
  plan.block_bytes = runner.kv_block_bytes(options.block_size, options.kv_dtype);
  if (plan.block_bytes == 0) return Status::error("the model runner reports 0 bytes per KV block");
  if (options.kv_memory_bytes > 0) {
    plan.budget_bytes = options.kv_memory_bytes;
  } else {
    constexpr size_t kGiB = size_t(1) << 30;
    plan.default_budget = true;
    plan.budget_bytes = available_bytes ? std::min(*available_bytes / 4, 16 * kGiB) : kGiB;
  }
  const int64_t max_useful = KvBlockManager::blocks_for(std::max<int64_t>(runner.max_context(), 1), options.block_size) *
                             std::max<int64_t>(options.max_running, 1);
  plan.num_blocks = std::min<int64_t>(int64_t(plan.budget_bytes / plan.block_bytes), max_useful);
  if (plan.num_blocks < 1) {
    return Status::error(fmt::format("a KV budget of {} bytes holds no block (one block of {} tokens costs {} bytes)",
                                     plan.budget_bytes, options.block_size, plan.block_bytes));
  }
  return plan;
}

}  // namespace tern
