// SparseGPT (Frantar & Alistarh, 2023): GPTQ's optimal-brain-surgeon sweep with a mask instead of a
// rounding grid. Columns go left to right in blocks; at the start of each block (unstructured) or of
// each group of M inputs (N:M) a row chooses its zeros by the OBS saliency w² / [H⁻¹]_jj² of its current
// (already error-compensated) weights, then every column is fixed in turn and its error is pushed onto
// the columns not yet reached through U (H⁻¹ = UᵀU, dense_math.h), so the kept weights absorb what the
// pruned ones did on the calibration inputs. H = Σ xᵀx over the calibration tokens.
//
// The unstructured mask, by spec.group: kLayer is the reference implementation's (at each block, the
// block's share of the matrix's zeros goes to the lowest saliencies of the whole [rows, block] tile, so
// rows lose different counts); kRow chooses per row (each row loses exactly the same count, as Wanda's
// per-output comparison group), rounded per block so that the row's total is round(sparsity · cols).
#pragma once

#include <cstdint>
#include <vector>

#include "compress/prune_criteria.h"
#include "core/exec_context.h"
#include "core/status.h"

namespace tern {

struct SparseGptOptions {
  double percdamp = 0.01;  // H += percdamp · mean(diag H) · I
  int block_size = 128;    // columns per mask-selection block (rounded down to a multiple of M for N:M)
};

// In place on w [rows, cols] (f32); h [cols, cols] = XᵀX at any positive scale. Columns never
// activated (zero diagonal) are pruned outright, as the reference does.
Status sparsegpt_prune(ExecContext& ctx, float* w, int64_t rows, int64_t cols, const std::vector<double>& h,
                       const PruneSpec& spec, const SparseGptOptions& options = {});

}  // namespace tern
