// SmoothQuant's migration strength chosen per layer and per smoothed input on calibration text, the
// way AWQ chooses its scales: for each α of a grid, the factors s(α) of smooth_layer, and the output
// error of the linears reading that input when both sides are rounded as W8A8 computes them
// (activations per token, weights per output channel); the α with the least error wins.
#pragma once

#include <array>
#include <vector>

#include "compress/smoothquant.h"

namespace tern {

// Σ_k ‖X W_kᵀ − Q_tok(X·diag(1/s)) · Q_ch(W_k·diag(s))ᵀ‖²  for x: [n, cols] and each w_k: f32 [rows_k, cols]
// (s empty: no smoothing). Q_tok: symmetric int8 per row (absmax / 127); Q_ch: quantize_rtn with `spec`.
Result<double> w8a8_output_error(ExecContext& ctx, const float* x, int64_t n, int64_t cols,
                                 const std::vector<const std::vector<float>*>& ws, const std::vector<float>& s,
                                 const QuantSpec& spec);

// For every layer and smoothed input (index LinearInput), the α in `grid` with the least
// w8a8_output_error on the calibration sample rows (stats collected with sample_rows > 0); inputs the
// options leave unsmoothed keep options.alpha. The result goes into SmoothQuantOptions::layer_alpha.
Result<std::vector<std::array<double, 4>>> search_smoothquant_alpha(ExecContext& ctx, const Model& model,
                                                                    const CalibrationStats& stats,
                                                                    const SmoothQuantOptions& options,
                                                                    const std::vector<double>& grid);

// The grid `tern quantize --sq-alpha-search` uses: 0.30, 0.35, ..., 0.90.
std::vector<double> default_alpha_grid();

}  // namespace tern
