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
  return Status::error(fmt::format("unknown pruning method '{}' (magnitude, wanda or sparsegpt)", s));
}

const char* prune_method_name(PruneMethod m) {
  switch (m) {
    case PruneMethod::kMagnitude: return "magnitude";
    case PruneMethod::kWanda: return "wanda";
    case PruneMethod::kSparseGpt: return "sparsegpt";
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

void prune_by_scores(float* w, const float* scores, int64_t rows, int64_t cols, const PruneSpec& spec) {
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

void prune_linear(float* w, int64_t rows, int64_t cols, const PruneSpec& spec, const std::vector<double>& col_sq) {
  const std::vector<float> s = prune_scores(w, rows, cols, col_sq);
  prune_by_scores(w, s.data(), rows, cols, spec);
}

}  // namespace tern
