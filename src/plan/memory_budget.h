// One model of memory for the whole program: the serving engine sizes its KV pool with
// default_kv_budget() and `tern run` checks a request with check_fits_host(), both from the
// planner's arithmetic, so a configuration that cannot fit is refused up front with the reason.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "core/kv_dtype.h"
#include "core/status.h"

namespace tern {
struct ModelConfig;
}

namespace tern::plan {

struct HostMemory {
  double total_bytes = 0;      // MemTotal
  double available_bytes = 0;  // MemAvailable: free + reclaimable page cache
};

// /proc/meminfo of this machine.
Result<HostMemory> read_host_memory();
// The text of a /proc/meminfo (values in kB).
Result<HostMemory> parse_meminfo(const std::string& text);

struct KvBudgetOptions {
  double kv_elem_bytes = 2;       // per cached element: bf16 2, f32 4, int8/fp8 1 (+ scales, see below)
  double kv_scale_bytes_per_head = 0;  // int8/fp8: 8 (f32 K and V scales per token slot and head)
  int64_t max_context = 0;        // tokens one sequence may reach; 0 = the model's maximum
  int64_t max_sequences = 256;    // the engine's max_running: more KV than this many full sequences is waste
  int64_t min_tokens = 0;         // refuse below this many cached tokens; 0 = min(max_context, 4096)
  int64_t chunk_tokens = 512;     // prefill chunk (activations workspace)
  double weight_bytes = 0;        // the loaded weights; 0 = config arithmetic at the checkpoint dtype
  double headroom_fraction = 0.1; // of available memory left to the OS and other processes
};

struct KvBudget {
  size_t bytes = 0;         // the KV pool size to allocate
  int64_t max_tokens = 0;   // cached tokens it holds (all sequences together)
  double kv_bytes_per_token = 0;
  std::string explanation;  // one line: where the number comes from
};

// The KV pool a CPU engine should allocate for this model on this host: what is available after the
// weights, the activations and a headroom, capped at max_sequences full-context sequences. An error
// (the planner's reason) when fewer than min_tokens would fit.
Result<KvBudget> default_kv_budget(const ModelConfig& config, const HostMemory& host, const KvBudgetOptions& options);

// `tern run`: one sequence of `tokens` with its KV cache plus the weights and activations must fit in
// the available memory; otherwise the reason and a remedy.
Status check_fits_host(const ModelConfig& config, const HostMemory& host, int64_t tokens, double weight_bytes,
                       KvDType kv_dtype = KvDType::F32);

}  // namespace tern::plan
