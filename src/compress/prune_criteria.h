// Unstructured and N:M pruning of one linear layer w [rows = outputs, cols = inputs]: which weights
// become zero, by the lowest score within a comparison group (PruneGroup: each output row, as Wanda
// does, or the whole layer, as the magnitude baselines of the Wanda and SparseGPT papers do; N:M
// always compares within each group of M consecutive inputs of a row):
//   magnitude  score |w_ij|
//   wanda      score |w_ij| · ‖X_j‖₂, X_j the j-th input over every calibration token (Sun et al., 2023)
//   ria        score (|w_ij| / Σ_k |w_kj| + |w_ij| / Σ_k |w_ik|) · ‖X_j‖₂^0.5: Wanda's follow-up "relative
//              importance and activations" (Zhang et al., ICLR 2024), no weight update either
// SparseGPT (sparsegpt.h) scores with the inverse Hessian and updates the weights it keeps.
// N:M (NVIDIA's semi-structured sparsity): at most N non-zeros in every M consecutive inputs of a row.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/status.h"

namespace tern {

enum class PruneMethod { kMagnitude, kWanda, kSparseGpt, kRia };
// "magnitude", "wanda", "sparsegpt", "ria"; anything else is an error naming it.
Result<PruneMethod> parse_prune_method(const std::string& s);
const char* prune_method_name(PruneMethod m);

// The comparison group of unstructured pruning: each output row loses round(S · cols) weights, or the
// layer (the whole matrix) loses round(S · rows · cols), however they fall across its rows.
enum class PruneGroup { kRow, kLayer };
// "row", "layer"; anything else is an error naming it.
Result<PruneGroup> parse_prune_group(const std::string& s);

struct PruneSpec {
  double sparsity = 0.5;  // unstructured: the fraction of every row (or of the layer) set to zero
  int n = 0, m = 0;       // N:M when m > 0: at most n non-zeros in each group of m consecutive inputs
  PruneGroup group = PruneGroup::kRow;  // unstructured only
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

// In place on w [rows, cols]: zeroes, per row or per layer (per group of m for N:M), the weights of
// lowest score [rows, cols]; ties go to the lower (row-major) index, so the result is deterministic.
void prune_by_scores(float* w, const float* scores, int64_t rows, int64_t cols, const PruneSpec& spec);

// The scores above: |w| (col_sq empty) or |w_ij| · sqrt(col_sq[j]) (Wanda; col_sq: Σ_t x_tj², [cols]).
std::vector<float> prune_scores(const float* w, int64_t rows, int64_t cols, const std::vector<double>& col_sq);
// RIA's scores (col_sq as above, required).
std::vector<float> ria_scores(const float* w, int64_t rows, int64_t cols, const std::vector<double>& col_sq);

// magnitude (col_sq empty) or wanda: prune_scores then prune_by_scores.
void prune_linear(float* w, int64_t rows, int64_t cols, const PruneSpec& spec, const std::vector<double>& col_sq);

// OWL (outlier-weighted layer-wise sparsity, Yin et al., ICML 2024): layer l's sparsity from its
// outlier ratio D_l = the fraction of its Wanda scores above m · their mean (over all its linears):
// density_l = (1 − S) + λ·2·(D_l − min D)/(max D − min D) − mean of that term, so layers with more
// outliers keep more weights; the sparsities span 2λ and their mean is S (so each is within S ± 2λ).
// All D equal: S everywhere.
std::vector<double> owl_layer_sparsity(const std::vector<double>& outlier_ratio, double sparsity, double lambda);
// The fraction of scores above m · mean(scores) (OWL's layer outlier distribution).
double outlier_ratio(const std::vector<float>& scores, double m);

}  // namespace tern
