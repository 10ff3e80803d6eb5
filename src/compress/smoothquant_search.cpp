#include "compress/smoothquant_search.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>

#include "compress/dense_math.h"
#include "compress/model_linears.h"

namespace tern {

Result<double> w8a8_output_error(ExecContext& ctx, const float* x, int64_t n, int64_t cols,
                                 const std::vector<const std::vector<float>*>& ws, const std::vector<float>& s,
                                 const QuantSpec& spec) {
  if (n <= 0 || cols <= 0) return Status::error("w8a8_output_error: no rows");
  if (!s.empty() && int64_t(s.size()) != cols) return Status::error("w8a8_output_error: s does not match the columns");
  // xq: [n, cols] what the W8A8 kernel reads: x / s rounded to int8 per token, dequantized.
  std::vector<float> xq(size_t(n * cols));
  for (int64_t r = 0; r < n; ++r)
    for (int64_t c = 0; c < cols; ++c) xq[size_t(r * cols + c)] = x[r * cols + c] / (s.empty() ? 1.0f : s[size_t(c)]);
  fake_quantize_rows_int8(xq.data(), n, cols);
  double err = 0;
  for (const std::vector<float>* w : ws) {
    if (w->size() % size_t(cols) != 0) return Status::error("w8a8_output_error: weight does not match the columns");
    const int64_t rows = int64_t(w->size()) / cols;
    std::vector<float> scaled = *w;  // [rows, cols] W·diag(s)
    if (!s.empty())
      for (size_t i = 0; i < scaled.size(); ++i) scaled[i] *= s[i % size_t(cols)];
    TERN_ASSIGN_OR_RETURN(QuantizedLinear q, quantize_rtn(scaled.data(), rows, cols, spec));
    const std::vector<float> wq = dequantize(q);
    std::vector<float> ref(size_t(n * rows)), got(size_t(n * rows));  // [n, rows]
    matmul_f32(ctx, x, n, w->data(), rows, cols, ref.data());
    matmul_f32(ctx, xq.data(), n, wq.data(), rows, cols, got.data());
    for (size_t i = 0; i < ref.size(); ++i) {
      const double d = double(got[i]) - double(ref[i]);
      err += d * d;
    }
  }
  return err;
}

std::vector<double> default_alpha_grid() {
  std::vector<double> g;
  for (int i = 6; i <= 18; ++i) g.push_back(0.05 * i);
  return g;
}

Result<std::vector<std::array<double, 4>>> search_smoothquant_alpha(ExecContext& ctx, const Model& model,
                                                                    const CalibrationStats& stats,
                                                                    const SmoothQuantOptions& options,
                                                                    const std::vector<double>& grid) {
  const auto& layers = model.weights().layers;
  if (grid.empty()) return Status::error("smoothquant: empty alpha grid");
  if (stats.layers.size() != layers.size()) return Status::error("smoothquant: calibration does not match the model");
  std::vector<std::array<double, 4>> best(layers.size());
  for (auto& b : best) b.fill(options.alpha);
  for (size_t l = 0; l < layers.size(); ++l) {
    // The original weights of each input's readers: the error is measured against them.
    std::array<std::vector<float>, kLinearKinds> w;
    for (LinearKind k : kAllLinears) {
      TERN_ASSIGN_OR_RETURN(w[size_t(k)], weight_to_f32(linear_weight(layers[l], k)));
    }
    std::array<double, 4> best_err;
    best_err.fill(-1);
    for (double a : grid) {
      SmoothQuantOptions o = options;
      o.alpha = a;
      o.layer_alpha.clear();
      TERN_ASSIGN_OR_RETURN(SmoothedLayer sl, smooth_layer(model, stats, int(l), o));
      for (int slot = 0; slot < 4; ++slot) {
        if (sl.s[size_t(slot)].empty()) continue;  // this input is not smoothed
        const SlotStats& st = stats.at(int(l), LinearInput(slot));
        if (st.n_sample() == 0) return Status::error("smoothquant: alpha search needs calibration sample rows");
        std::vector<const std::vector<float>*> readers;
        for (LinearKind k : kAllLinears)
          if (int(linear_input(k)) == slot) readers.push_back(&w[size_t(k)]);
        TERN_ASSIGN_OR_RETURN(double e, w8a8_output_error(ctx, st.sample.data(), st.n_sample(), st.cols, readers,
                                                          sl.s[size_t(slot)], options.spec));
        if (best_err[size_t(slot)] < 0 || e < best_err[size_t(slot)]) best_err[size_t(slot)] = e, best[l][size_t(slot)] = a;
      }
    }
  }
  return best;
}

}  // namespace tern
