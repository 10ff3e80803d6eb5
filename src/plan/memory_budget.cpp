#include "plan/memory_budget.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <sstream>

#include "core/mapped_file.h"
#include "formats/model_config.h"
#include "plan/kv_bytes.h"
#include "plan/model_shape.h"
#include "plan/params.h"
#include "plan/precision.h"

namespace tern::plan {

namespace {

std::string gb(double bytes) { return fmt::format("{:.2f} GB", bytes / 1e9); }

double config_weight_bytes(const ModelShape& s) {
  auto p = parse_weight_precision(s.dtype);
  return weight_bytes(s, p.is_ok() ? *p : WeightPrecision{}).total;
}

// The CPU engine's workspace for one step (see planner.cpp activation_bytes): f32 rows of
// 3 × hidden + 2 × q_dim + 2 × intermediate per chunk token, plus a row of logits per sequence.
double cpu_activation_bytes(const ModelShape& s, int64_t chunk, int64_t sequences) {
  const double per_token = 3.0 * s.hidden + 2.0 * s.heads * s.head_dim + 2.0 * s.intermediate;
  return double(chunk) * per_token * 4.0 + double(std::max<int64_t>(1, sequences)) * double(s.vocab) * 4.0;
}

}  // namespace

Result<HostMemory> parse_meminfo(const std::string& text) {
  HostMemory h;
  std::istringstream in(text);
  std::string key, unit;
  double value = 0;
  bool total = false, avail = false;
  while (in >> key >> value) {
    std::getline(in, unit);
    if (key == "MemTotal:") h.total_bytes = value * 1024, total = true;
    if (key == "MemAvailable:") h.available_bytes = value * 1024, avail = true;
  }
  if (!total || !avail) return Status::error("/proc/meminfo: MemTotal or MemAvailable missing");
  return h;
}

Result<HostMemory> read_host_memory() {
  TERN_ASSIGN_OR_RETURN(std::string text, read_text_file("/proc/meminfo"));
  return parse_meminfo(text);
}

Result<KvBudget> default_kv_budget(const ModelConfig& config, const HostMemory& host, const KvBudgetOptions& o) {
  const ModelShape s = shape_from_config(config);
  const double weights = o.weight_bytes > 0 ? o.weight_bytes : config_weight_bytes(s);
  const double activations = cpu_activation_bytes(s, o.chunk_tokens, o.max_sequences);
  KvBudget b;
  b.kv_bytes_per_token = kv_bytes_per_token(s, KvPrecision{"", o.kv_elem_bytes, o.kv_scale_bytes_per_head});
  const int64_t context = o.max_context > 0 ? o.max_context : (s.max_positions > 0 ? s.max_positions : 4096);
  const int64_t min_tokens = o.min_tokens > 0 ? o.min_tokens : std::min<int64_t>(context, 4096);
  const double usable = host.available_bytes * (1.0 - o.headroom_fraction);
  const double free_kv = usable - weights - activations;
  const double cap = b.kv_bytes_per_token * double(context) * double(std::max<int64_t>(o.max_sequences, 1));
  if (free_kv < b.kv_bytes_per_token * double(min_tokens)) {
    return Status::error(fmt::format(
        "does not fit: weights {} + activations {} leave {} of the {} available ({}% kept free), but {} tokens of KV "
        "cache need {} ({:.0f} KiB per token); use a smaller weight precision, a smaller KV dtype or a shorter context",
        gb(weights), gb(activations), gb(std::max(free_kv, 0.0)), gb(host.available_bytes),
        int(o.headroom_fraction * 100), min_tokens, gb(b.kv_bytes_per_token * double(min_tokens)),
        b.kv_bytes_per_token / 1024));
  }
  b.bytes = size_t(std::min(free_kv, cap));
  b.max_tokens = int64_t(double(b.bytes) / b.kv_bytes_per_token);
  b.explanation = fmt::format(
      "KV pool {} = min(available {} × {:.2f} − weights {} − activations {}, {} sequences × {} tokens × {:.0f} KiB)",
      gb(double(b.bytes)), gb(host.available_bytes), 1.0 - o.headroom_fraction, gb(weights), gb(activations),
      o.max_sequences, context, b.kv_bytes_per_token / 1024);
  return b;
}

Status check_fits_host(const ModelConfig& config, const HostMemory& host, int64_t tokens, double weight_bytes,
                       KvDType kv_dtype) {
  const KvPrecision kv = kv_precision(kv_dtype);
  KvBudgetOptions o;
  o.kv_elem_bytes = kv.bytes;
  o.kv_scale_bytes_per_head = kv.scale_bytes_per_head;
  o.max_context = tokens;
  o.min_tokens = tokens;
  o.max_sequences = 1;
  o.weight_bytes = weight_bytes;
  o.headroom_fraction = 0.05;
  auto b = default_kv_budget(config, host, o);
  if (!b.is_ok()) return Status::error(fmt::format("this run ({} tokens) {}", tokens, b.status().message()));
  return Status::ok();
}

}  // namespace tern::plan
