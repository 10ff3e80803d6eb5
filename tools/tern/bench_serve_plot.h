// tern bench serve's results: one LevelResult per concurrency level, shown as a table, JSON, or an SVG
// of latency vs throughput across the sweep.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace tern::cli {

struct LevelResult {
  int concurrency = 0;
  int64_t completed = 0, failed = 0;
  std::string first_error;
  double wall_s = 0;
  int64_t output_tokens = 0;
  double output_tok_per_s = 0, requests_per_s = 0;
  std::vector<double> ttft_ms, itl_ms, e2e_ms;  // p50, p90, p99
  // With latency targets (--goodput-*): requests that met both (TTFT, and mean time per output token after
  // the first), per second of the run; refused = 429 answers (counted in failed too).
  bool has_goodput = false;
  int64_t good = 0, refused = 0;
  double goodput_per_s = 0;
};

nlohmann::json level_json(const LevelResult& r);
std::string level_table(const std::vector<LevelResult>& results);
// x: output tokens/s; y: latency in ms (TTFT p50/p99 and ITL p50 x 100 are on different scales, so
// two panels: TTFT and e2e on the left, ITL on the right), one point per level labelled with its concurrency.
std::string latency_throughput_svg(const std::vector<LevelResult>& results, const std::string& model,
                                   int64_t prompt_tokens, int64_t output_tokens);

}  // namespace tern::cli
