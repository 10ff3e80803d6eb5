// SmoothQuant's per-layer α search: the W8A8 output error it minimizes matches a direct computation,
// smoothing lowers it when activations carry outlier channels, and on docs-llama-28m (calibration
// half only) the search returns, for every layer and input, the grid α with the least error.
#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "compress/smoothquant_search.h"
#include "core/cpu_features.h"
#include "core/mapped_file.h"
#include "core/thread_pool.h"
#include "docs_val_halves.h"
#include "test_support.h"

namespace tern {
namespace {

// x [n, cols]: N(0, 1) with channel 3 at 40× (an outlier channel, as in LLM activations); w [rows, cols].
struct OutlierCase {
  int64_t n = 64, cols = 32, rows = 24;
  std::vector<float> x, w;
  OutlierCase() {
    std::mt19937 rng(7);
    std::normal_distribution<float> nd(0, 1);
    x.resize(size_t(n * cols)), w.resize(size_t(rows * cols));
    for (int64_t r = 0; r < n; ++r)
      for (int64_t c = 0; c < cols; ++c) x[size_t(r * cols + c)] = nd(rng) * (c == 3 ? 40.0f : 1.0f);
    for (auto& v : w) v = 0.05f * nd(rng);
  }
  std::vector<float> act_max() const {
    std::vector<float> m(size_t(cols), 0);
    for (size_t i = 0; i < x.size(); ++i) m[i % size_t(cols)] = std::max(m[i % size_t(cols)], std::fabs(x[i]));
    return m;
  }
  std::vector<float> w_max() const {
    std::vector<float> m(size_t(cols), 0);
    for (size_t i = 0; i < w.size(); ++i) m[i % size_t(cols)] = std::max(m[i % size_t(cols)], std::fabs(w[i]));
    return m;
  }
};

// The objective written out directly (double accumulation, no GEMM kernel).
double reference_error(const OutlierCase& t, const std::vector<float>& s, const QuantSpec& spec) {
  std::vector<float> ws = t.w;
  for (size_t i = 0; i < ws.size(); ++i) ws[i] *= s[i % size_t(t.cols)];
  const std::vector<float> wq = dequantize(quantize_rtn(ws.data(), t.rows, t.cols, spec).value());
  double err = 0;
  for (int64_t r = 0; r < t.n; ++r) {
    std::vector<float> xr(size_t(t.cols));
    float amax = 0;
    for (int64_t c = 0; c < t.cols; ++c) xr[size_t(c)] = t.x[size_t(r * t.cols + c)] / s[size_t(c)], amax = std::max(amax, std::fabs(xr[size_t(c)]));
    for (auto& v : xr) v = std::nearbyint(v / (amax / 127.0f)) * (amax / 127.0f);
    for (int64_t o = 0; o < t.rows; ++o) {
      double ref = 0, got = 0;
      for (int64_t c = 0; c < t.cols; ++c) {
        ref += double(t.x[size_t(r * t.cols + c)]) * t.w[size_t(o * t.cols + c)];
        got += double(xr[size_t(c)]) * wq[size_t(o * t.cols + c)];
      }
      err += (got - ref) * (got - ref);
    }
  }
  return err;
}

TEST(SmoothQuantSearch, OutputErrorMatchesTheDirectComputationAndSmoothingHelpsOutliers) {
  ThreadPool pool(2);
  ExecContext ctx(pool, CpuFeatures::detect());
  const OutlierCase t;
  const QuantSpec spec{8, 0, true};
  std::vector<double> errs;
  for (double a : {0.0, 0.25, 0.5, 0.75, 1.0}) {
    const auto s = smoothquant_scales(t.act_max(), t.w_max(), a);
    auto e = w8a8_output_error(ctx, t.x.data(), t.n, t.cols, {&t.w}, s, spec);
    ASSERT_TRUE(e.is_ok()) << e.status().message();
    const double ref = reference_error(t, s, spec);
    EXPECT_NEAR(*e, ref, 1e-3 * ref + 1e-9) << "alpha " << a;
    errs.push_back(*e);
  }
  // α = 0 leaves the 40× channel in the activations, whose per-token step it inflates: some
  // migration into the weights must do better, and moving everything (α = 1) is not the best either.
  const double best = *std::min_element(errs.begin(), errs.end());
  EXPECT_LT(best, 0.5 * errs[0]);
  EXPECT_LT(best, errs[4]);
  auto none = w8a8_output_error(ctx, t.x.data(), t.n, t.cols, {&t.w}, {}, spec);
  ASSERT_TRUE(none.is_ok());
  EXPECT_LT(best, 0.5 * *none);  // and no smoothing at all is as bad as α = 0
  // Bad input is an error, not a crash.
  EXPECT_FALSE(w8a8_output_error(ctx, t.x.data(), t.n, t.cols, {&t.w}, std::vector<float>(5, 1.0f), spec).is_ok());
  EXPECT_FALSE(w8a8_output_error(ctx, t.x.data(), 0, t.cols, {&t.w}, {}, spec).is_ok());
}

TEST(SmoothQuantSearch, PicksTheGridAlphaWithTheLeastErrorOnARealModel) {
  ThreadPool pool(2);
  ExecContext ctx(pool, CpuFeatures::detect());
  const std::string dir = test::model_dir("docs-llama-28m");
  auto model = Model::load(dir);
  ASSERT_TRUE(model.is_ok());
  const auto tokens = test::docs_val_halves(dir).calib;
  ASSERT_FALSE(tokens.empty());
  auto windows = calibration_windows(tokens, 128, 2);
  ASSERT_TRUE(windows.is_ok());
  CalibrationOptions copt;
  copt.sample_rows = 96;
  auto stats = calibrate(**model, ctx, *windows, copt);
  ASSERT_TRUE(stats.is_ok()) << stats.status().message();
  SmoothQuantOptions opt;
  const std::vector<double> grid = {0.3, 0.6, 0.9};
  auto alpha = search_smoothquant_alpha(ctx, **model, *stats, opt, grid);
  ASSERT_TRUE(alpha.is_ok()) << alpha.status().message();
  ASSERT_EQ(alpha->size(), size_t(8));
  for (const auto& a : *alpha)
    for (double v : a) EXPECT_TRUE(v == 0.3 || v == 0.6 || v == 0.9) << v;
  // Layer 1, every input: the chosen α's error is the least over the grid.
  const auto& layer = (**model).weights().layers[1];
  std::array<std::vector<float>, kLinearKinds> w;
  for (LinearKind k : kAllLinears) w[size_t(k)] = weight_to_f32(linear_weight(layer, k)).value();
  for (int slot = 0; slot < 4; ++slot) {
    std::vector<const std::vector<float>*> readers;
    for (LinearKind k : kAllLinears)
      if (int(linear_input(k)) == slot) readers.push_back(&w[size_t(k)]);
    const SlotStats& st = stats->at(1, LinearInput(slot));
    double chosen = -1, least = -1;
    for (double a : grid) {
      SmoothQuantOptions o;
      o.alpha = a;
      auto sl = smooth_layer(**model, *stats, 1, o);
      ASSERT_TRUE(sl.is_ok());
      const double e = w8a8_output_error(ctx, st.sample.data(), st.n_sample(), st.cols, readers, sl->s[size_t(slot)], o.spec).value();
      if (a == (*alpha)[1][size_t(slot)]) chosen = e;
      if (least < 0 || e < least) least = e;
    }
    EXPECT_EQ(chosen, least) << "slot " << slot;
  }
  // The searched α quantize the model (per-layer alphas reach smooth_layer); mismatches are errors.
  opt.layer_alpha = *alpha;
  EXPECT_TRUE(quantize_model_smoothquant(**model, *stats, opt).is_ok());
  opt.layer_alpha.pop_back();
  EXPECT_FALSE(quantize_model_smoothquant(**model, *stats, opt).is_ok());
  opt.layer_alpha.assign(8, {0.5, 0.5, 1.5, 0.5});
  EXPECT_FALSE(quantize_model_smoothquant(**model, *stats, opt).is_ok());
  CalibrationStats no_samples = *stats;
  for (auto& l : no_samples.layers)
    for (auto& s : l) s.sample.clear();
  EXPECT_FALSE(search_smoothquant_alpha(ctx, **model, no_samples, SmoothQuantOptions{}, grid).is_ok());
}

}  // namespace
}  // namespace tern
