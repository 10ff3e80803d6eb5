// Unstructured and N:M pruning of one linear layer w [rows = outputs, cols = inputs]: which weights
// become zero. Each output row is its own comparison group (as Wanda does; the same for every
// method, so the methods differ only in the score):
//   magnitude  score |w_ij|
//   wanda      score |w_ij| · ‖X_j‖₂, X_j the j-th input over every calibration token (Sun et al., 2023)
// SparseGPT (sparsegpt.h) scores with the inverse Hessian and updates the weights it keeps.
// N:M (NVIDIA's semi-structured sparsity): at most N non-zeros in every M consecutive inputs of a row.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/status.h"

namespace tern {

enum class PruneMethod { kMagnitude, kWanda, kSparseGpt };
// "magnitude", "wanda", "sparsegpt"; anything else is an error naming it.
Result<PruneMethod> parse_prune_method(const std::string& s);
const char* prune_method_name(PruneMethod m);

struct PruneSpec {
  double sparsity = 0.5;  // unstructured: the fraction of every row set to zero
  int n = 0, m = 0;       // N:M when m > 0: at most n non-zeros in each group of m consecutive inputs
  bool nm() const { return m > 0; }
  double fraction() const { return nm() ? 1.0 - double(n) / double(m) : sparsity; }
};

// "2:4" -> n 2, m 4. Errors: not N:M, N or M not a positive integer, N >= M.
Result<PruneSpec> parse_nm_pattern(const std::string& s);
// sparsity in (0, 1), or 0 < n < m (m <= 256).
Status validate_prune_spec(const PruneSpec& spec);
// The spec applies to a matrix of `cols` inputs: M divides cols. `what` names the matrix in the error.
Status check_prune_cols(const PruneSpec& spec, int64_t cols, const std::string& what);

// Zeros set in one row of `cols` inputs: round(sparsity · cols), or (m - n) per group.
int64_t pruned_per_row(const PruneSpec& spec, int64_t cols);

// In place on w [rows, cols]: zeroes, per row (per group of m for N:M), the weights of lowest
// score [rows, cols]; ties go to the lower column index, so the result is deterministic.
void prune_by_scores(float* w, const float* scores, int64_t rows, int64_t cols, const PruneSpec& spec);

// The scores above: |w| (col_sq empty) or |w_ij| · sqrt(col_sq[j]) (Wanda; col_sq: Σ_t x_tj², [cols]).
std::vector<float> prune_scores(const float* w, int64_t rows, int64_t cols, const std::vector<double>& col_sq);

// magnitude (col_sq empty) or wanda: prune_scores then prune_by_scores.
void prune_linear(float* w, int64_t rows, int64_t cols, const PruneSpec& spec, const std::vector<double>& col_sq);

}  // namespace tern
