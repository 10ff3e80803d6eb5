#include "parallel/pp_layout.h"
#include "parallel/pp_split.h"

#include <fmt/format.h>

#include <algorithm>
#include <limits>

namespace tern {

std::vector<int> pp_split_layers(const PpStageBytes& b, int stages) {
  const int n = int(b.layers.size());
  std::vector<double> prefix(size_t(n) + 1, 0.0);
  for (int i = 0; i < n; ++i) prefix[size_t(i) + 1] = prefix[size_t(i)] + b.layers[size_t(i)];
  // Stage s (of P) running layers [j, i).
  auto cost = [&](int s, int j, int i) {
    return prefix[size_t(i)] - prefix[size_t(j)] + (s == 0 ? b.first : 0.0) + (s == stages - 1 ? b.last : 0.0);
  };
  // best[s][i]: the smallest largest-stage bytes of layers [0, i) over stages 0..s (each non-empty).
  // O(P · n²): n is at most a few hundred layers.
  const double inf = std::numeric_limits<double>::infinity();
  std::vector<std::vector<double>> best(size_t(stages), std::vector<double>(size_t(n) + 1, inf));
  for (int i = 1; i <= n; ++i) best[0][size_t(i)] = cost(0, 0, i);
  for (int s = 1; s < stages; ++s) {
    for (int i = s + 1; i <= n; ++i) {
      double m = inf;
      for (int j = s; j < i; ++j) m = std::min(m, std::max(best[size_t(s) - 1][size_t(j)], cost(s, j, i)));
      best[size_t(s)][size_t(i)] = m;
    }
  }
  const double target = best[size_t(stages) - 1][size_t(n)];
  // From the last stage back, each takes as many layers as fit under the optimum while the layers
  // before it still split within it (best[s - 1] grows with j, the stage's cost shrinks with j).
  std::vector<int> bounds(size_t(stages) + 1, 0);
  bounds[size_t(stages)] = n;
  for (int s = stages - 1; s >= 1; --s) {
    const int i = bounds[size_t(s) + 1];
    int j = s;
    while (j < i - 1 && !(cost(s, j, i) <= target && best[size_t(s) - 1][size_t(j)] <= target)) ++j;
    bounds[size_t(s)] = j;
  }
  return bounds;
}

std::vector<double> pp_stage_totals(const PpStageBytes& b, const std::vector<int>& bounds) {
  const int stages = int(bounds.size()) - 1;
  std::vector<double> t(size_t(std::max(stages, 0)), 0.0);
  for (int s = 0; s < stages; ++s) {
    for (int l = bounds[size_t(s)]; l < bounds[size_t(s) + 1]; ++l) t[size_t(s)] += b.layers[size_t(l)];
    if (s == 0) t[size_t(s)] += b.first;
    if (s == stages - 1) t[size_t(s)] += b.last;
  }
  return t;
}

RankGroups rank_groups(int rank, int tp, int ep) {
  RankGroups g;
  const int stage_size = tp * ep, stage0 = rank / stage_size * stage_size, group0 = rank / tp * tp;
  for (int i = 0; i < tp; ++i) g.tp.push_back(group0 + i);
  for (int i = 0; i < stage_size; ++i) g.stage.push_back(stage0 + i);
  return g;
}

namespace {

std::string join_layers(const std::vector<int>& v) {
  std::string s;
  for (int x : v) s += (s.empty() ? "" : ",") + std::to_string(x);
  return s;
}

}  // namespace

Result<std::vector<int>> parse_pp_layers(const std::string& text, int stages) {
  std::vector<int> out;
  size_t at = 0;
  for (;;) {
    const size_t comma = text.find(',', at);
    const std::string item = text.substr(at, comma == std::string::npos ? std::string::npos : comma - at);
    // Digits only (no sign, no spaces): a layer count of at least 1, bounded so the sum cannot overflow.
    const bool digits = !item.empty() && item.size() <= 6 && item.find_first_not_of("0123456789") == std::string::npos;
    if (!digits || std::stoi(item) < 1) {
      return Status::error(fmt::format("--pp-layers '{}': '{}' is not a layer count (a list of positive integers, "
                                       "one per stage, e.g. 5,3)", text, item));
    }
    out.push_back(std::stoi(item));
    if (comma == std::string::npos) break;
    at = comma + 1;
  }
  if (int(out.size()) != stages) {
    return Status::error(fmt::format("--pp-layers {} lists {} stage(s) but --pp is {} (one layer count per stage)",
                                     text, out.size(), stages));
  }
  return out;
}

Result<PpLayout> pp_layout(int n_layers, int world_rank, int world_size, int stages, int micro_batches,
                           int steps_in_flight, const std::vector<int>& stage_layers) {
  PpStageBytes equal;
  equal.layers.assign(size_t(std::max(n_layers, 0)), 1.0);
  return pp_layout(equal, world_rank, world_size, stages, micro_batches, steps_in_flight, stage_layers);
}

Result<PpLayout> pp_layout(const PpStageBytes& bytes, int world_rank, int world_size, int stages, int micro_batches,
                           int steps_in_flight, const std::vector<int>& stage_layers) {
  const int n_layers = int(bytes.layers.size());
  if (stages < 1 || world_size < 1 || world_size % stages != 0) {
    return Status::error(fmt::format("--pp {}: the job's {} ranks do not divide into {} stages", stages, world_size, stages));
  }
  if (world_rank < 0 || world_rank >= world_size) {
    return Status::error(fmt::format("rank {} of {} is not a rank", world_rank, world_size));
  }
  if (n_layers < stages) {
    return Status::error(fmt::format("--pp {}: config.json num_hidden_layers = {} is fewer than the stages", stages, n_layers));
  }
  if (micro_batches < 1) return Status::error(fmt::format("--pp-micro-batches {} must be at least 1", micro_batches));
  if (steps_in_flight < 0) return Status::error(fmt::format("--pp-steps-in-flight {} must be at least 1", steps_in_flight));
  std::vector<int> bounds;
  if (!stage_layers.empty()) {
    const std::string given = join_layers(stage_layers);
    if (int(stage_layers.size()) != stages) {
      return Status::error(fmt::format("--pp-layers {} lists {} stage(s) but --pp is {} (one layer count per stage)",
                                       given, stage_layers.size(), stages));
    }
    bounds.push_back(0);
    for (int n : stage_layers) {
      if (n < 1) return Status::error(fmt::format("--pp-layers {}: every stage needs at least one layer", given));
      bounds.push_back(bounds.back() + n);
    }
    if (bounds.back() != n_layers) {
      return Status::error(fmt::format("--pp-layers {} adds up to {} layers but config.json num_hidden_layers = {}",
                                       given, bounds.back(), n_layers));
    }
  } else {
    bounds = pp_split_layers(bytes, stages);
  }
  PpLayout p;
  p.stages = stages;
  p.tp = world_size / stages;
  p.stage = world_rank / p.tp;
  p.tp_rank = world_rank % p.tp;
  p.layer0 = bounds[size_t(p.stage)];
  p.layers = bounds[size_t(p.stage) + 1] - p.layer0;
  p.micro_batches = micro_batches;
  p.steps_in_flight = steps_in_flight > 0 ? steps_in_flight : stages;
  return p;
}

}  // namespace tern
