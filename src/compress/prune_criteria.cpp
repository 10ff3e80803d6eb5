#include "compress/prune_criteria.h"

#include <fmt/format.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <numeric>

namespace tern {

Result<PruneMethod> parse_prune_method(const std::string& s) {
  if (s == "magnitude") return PruneMethod::kMagnitude;
  if (s == "wanda") return PruneMethod::kWanda;
  if (s == "sparsegpt") return PruneMethod::kSparseGpt;
  if (s == "ria") return PruneMethod::kRia;
  return Status::error(fmt::format("unknown pruning method '{}' (magnitude, wanda, sparsegpt or ria)", s));
}

Result<PruneGroup> parse_prune_group(const std::string& s) {
  if (s == "row") return PruneGroup::kRow;
  if (s == "layer") return PruneGroup::kLayer;
  return Status::error(fmt::format("--group '{}': expected row or layer", s));
}

const char* prune_method_name(PruneMethod m) {
  switch (m) {
    case PruneMethod::kMagnitude: return "magnitude";
    case PruneMethod::kWanda: return "wanda";
    case PruneMethod::kSparseGpt: return "sparsegpt";
    case PruneMethod::kRia: return "ria";
  }
  return "?";
}

namespace {

bool parse_positive(const std::string& s, int* out) {
  if (s.empty() || s.size() > 4) return false;
  const auto r = std::from_chars(s.data(), s.data() + s.size(), *out);
  return r.ec == std::errc() && r.ptr == s.data() + s.size() && *out > 0;
}

}  // namespace

Result<PruneSpec> parse_nm_pattern(const std::string& s) {
  const size_t colon = s.find(':');
  PruneSpec spec;
  if (colon == std::string::npos || !parse_positive(s.substr(0, colon), &spec.n) ||
      !parse_positive(s.substr(colon + 1), &spec.m)) {
    return Status::error(fmt::format("--pattern '{}': expected N:M with positive integers, e.g. 2:4", s));
  }
  TERN_RETURN_IF_ERROR(validate_prune_spec(spec));
  return spec;
}

Status validate_prune_spec(const PruneSpec& spec) {
  if (spec.nm()) {
    if (spec.n <= 0 || spec.n >= spec.m || spec.m > 256)
      return Status::error(fmt::format("--pattern {}:{}: N must be at least 1 and below M (M at most 256)", spec.n, spec.m));
    return Status::ok();
  }
  if (!(spec.sparsity > 0.0 && spec.sparsity < 1.0))
    return Status::error(fmt::format("--sparsity {}: must be between 0 and 1 (exclusive)", spec.sparsity));
  return Status::ok();
}

Status check_prune_cols(const PruneSpec& spec, int64_t cols, const std::string& what) {
  if (spec.nm() && cols % spec.m != 0)
    return Status::error(fmt::format("--pattern {}:{}: {} has {} inputs, not a multiple of {}", spec.n, spec.m, what,
                                     cols, spec.m));
  return Status::ok();
}

int64_t pruned_per_row(const PruneSpec& spec, int64_t cols) {
  if (spec.nm()) return cols / spec.m * (spec.m - spec.n);
  return std::min<int64_t>(cols, std::llround(spec.sparsity * double(cols)));
}

namespace {

// The whole matrix as one group: the k = round(S · rows · cols) lowest (score, index) pairs become zero.
void prune_layer_by_scores(float* w, const float* scores, int64_t rows, int64_t cols, double sparsity) {
  const int64_t n = rows * cols;
  const int64_t k = std::min<int64_t>(n, std::llround(sparsity * double(n)));
  if (k <= 0) return;
  std::vector<float> sorted(scores, scores + n);
  std::nth_element(sorted.begin(), sorted.begin() + (k - 1), sorted.end());
  const float t = sorted[size_t(k - 1)];  // the k-th lowest score
  std::vector<float>().swap(sorted);
  int64_t below = 0;
  for (int64_t i = 0; i < n; ++i) below += scores[i] < t;
  int64_t ties = k - below;  // the lowest-index ties at t make up the count
  for (int64_t i = 0; i < n; ++i) {
    if (scores[i] < t) w[i] = 0.0f;
    else if (scores[i] == t && ties > 0) w[i] = 0.0f, --ties;
  }
}

}  // namespace

void prune_by_scores(float* w, const float* scores, int64_t rows, int64_t cols, const PruneSpec& spec) {
  if (!spec.nm() && spec.group == PruneGroup::kLayer) return prune_layer_by_scores(w, scores, rows, cols, spec.sparsity);
  // Per comparison group (a whole row, or m inputs): the k lowest (score, column) pairs become zero.
  const int64_t group = spec.nm() ? spec.m : cols;
  const int64_t k = spec.nm() ? spec.m - spec.n : pruned_per_row(spec, cols);
  if (k <= 0) return;
  std::vector<int64_t> idx(static_cast<size_t>(group));
  for (int64_t r = 0; r < rows; ++r) {
    float* wr = w + r * cols;
    const float* sr = scores + r * cols;
    for (int64_t g0 = 0; g0 + group <= cols; g0 += group) {
      std::iota(idx.begin(), idx.end(), g0);
      auto lower = [&](int64_t a, int64_t b) { return sr[a] < sr[b] || (sr[a] == sr[b] && a < b); };
      if (k < group) std::nth_element(idx.begin(), idx.begin() + (k - 1), idx.end(), lower);
      for (int64_t i = 0; i < k; ++i) wr[idx[size_t(i)]] = 0.0f;
    }
  }
}

std::vector<float> prune_scores(const float* w, int64_t rows, int64_t cols, const std::vector<double>& col_sq) {
  std::vector<float> s(size_t(rows * cols));
  std::vector<float> norm(size_t(cols), 1.0f);
  if (!col_sq.empty())
    for (int64_t c = 0; c < cols; ++c) norm[size_t(c)] = float(std::sqrt(std::max(0.0, col_sq[size_t(c)])));
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < cols; ++c) s[size_t(r * cols + c)] = std::fabs(w[r * cols + c]) * norm[size_t(c)];
  return s;
}

std::vector<float> ria_scores(const float* w, int64_t rows, int64_t cols, const std::vector<double>& col_sq) {
  // Relative importance: |w_ij| over the sum of |w| in its output row (Σ_k |w_ik|) plus over the sum in
  // its input column (Σ_k |w_kj|), times ‖X_j‖^0.5 (the paper's a = 0.5).
  std::vector<double> row_sum(size_t(rows), 0.0), col_sum(size_t(cols), 0.0);
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < cols; ++c) {
      const double a = std::fabs(w[r * cols + c]);
      row_sum[size_t(r)] += a, col_sum[size_t(c)] += a;
    }
  std::vector<float> act(size_t(cols), 1.0f);
  for (int64_t c = 0; c < cols; ++c)
    act[size_t(c)] = col_sq.empty() ? 1.0f : float(std::sqrt(std::sqrt(std::max(0.0, col_sq[size_t(c)]))));
  std::vector<float> s(size_t(rows * cols));
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < cols; ++c) {
      const double a = std::fabs(w[r * cols + c]);
      const double ri = (row_sum[size_t(r)] > 0 ? a / row_sum[size_t(r)] : 0.0) +
                        (col_sum[size_t(c)] > 0 ? a / col_sum[size_t(c)] : 0.0);
      s[size_t(r * cols + c)] = float(ri) * act[size_t(c)];
    }
  return s;
}

double outlier_ratio(const std::vector<float>& scores, double m) {
  if (scores.empty()) return 0.0;
  double mean = 0.0;
  for (float v : scores) mean += v;
  mean /= double(scores.size());
  int64_t above = 0;
  for (float v : scores) above += double(v) > m * mean;
  return double(above) / double(scores.size());
}

std::vector<double> owl_layer_sparsity(const std::vector<double>& d, double sparsity, double lambda) {
  std::vector<double> out(d.size(), sparsity);
  if (d.empty()) return out;
  const auto [lo, hi] = std::minmax_element(d.begin(), d.end());
  if (!(*hi > *lo)) return out;
  std::vector<double> t(d.size());
  double mean = 0.0;
  for (size_t i = 0; i < d.size(); ++i) mean += t[i] = (d[i] - *lo) / (*hi - *lo) * 2.0 * lambda;
  mean /= double(d.size());
  for (size_t i = 0; i < d.size(); ++i) out[i] = 1.0 - ((1.0 - sparsity) + t[i] - mean);
  return out;
}

void prune_linear(float* w, int64_t rows, int64_t cols, const PruneSpec& spec, const std::vector<double>& col_sq) {
  const std::vector<float> s = prune_scores(w, rows, cols, col_sq);
  prune_by_scores(w, s.data(), rows, cols, spec);
}

}  // namespace tern
