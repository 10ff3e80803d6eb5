// Pruning criteria on small matrices: exact zeros per row, the N:M pattern, Wanda's activation
// weighting, and SparseGPT's weight update lowering the layer's output error below magnitude pruning's
// on the same calibration inputs.
#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "compress/dense_math.h"
#include "compress/prune_criteria.h"
#include "compress/sparsegpt.h"
#include "core/cpu_features.h"
#include "core/thread_pool.h"

namespace tern {
namespace {

std::vector<float> randn(int64_t n, uint64_t seed, float scale = 1.0f) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> d(0.0f, scale);
  std::vector<float> v(static_cast<size_t>(n));
  for (float& x : v) x = d(rng);
  return v;
}

int64_t zeros_in(const float* w, int64_t n) {
  int64_t z = 0;
  for (int64_t i = 0; i < n; ++i) z += w[i] == 0.0f;
  return z;
}

// x [tokens, cols] with correlated, unevenly scaled columns (what makes the Hessian matter).
std::vector<float> calib_inputs(int64_t tokens, int64_t cols, uint64_t seed) {
  std::vector<float> base = randn(tokens * cols, seed);
  std::vector<float> x(base.size());
  for (int64_t t = 0; t < tokens; ++t)
    for (int64_t c = 0; c < cols; ++c) {
      const float scale = 0.2f + float(c % 7);
      x[size_t(t * cols + c)] = scale * (base[size_t(t * cols + c)] + 0.6f * base[size_t(t * cols + (c + 1) % cols)]);
    }
  return x;
}

// Σ over tokens and outputs of (x·wᵀ − x·w_refᵀ)².
double output_error(const std::vector<float>& x, int64_t tokens, const std::vector<float>& w, const std::vector<float>& ref,
                    int64_t rows, int64_t cols) {
  double e = 0;
  for (int64_t t = 0; t < tokens; ++t)
    for (int64_t r = 0; r < rows; ++r) {
      double d = 0;
      for (int64_t c = 0; c < cols; ++c) d += double(x[size_t(t * cols + c)]) * (w[size_t(r * cols + c)] - ref[size_t(r * cols + c)]);
      e += d * d;
    }
  return e;
}

TEST(PruneCriteria, MagnitudeZeroesExactlyTheSmallestOfEachRow) {
  const int64_t rows = 12, cols = 40;
  std::vector<float> w = randn(rows * cols, 1);
  const std::vector<float> orig = w;
  PruneSpec spec;
  spec.sparsity = 0.3;  // 12 of 40 per row
  prune_linear(w.data(), rows, cols, spec, {});
  for (int64_t r = 0; r < rows; ++r) {
    EXPECT_EQ(zeros_in(w.data() + r * cols, cols), 12) << "row " << r;
    float max_pruned = 0, min_kept = 1e9f;
    for (int64_t c = 0; c < cols; ++c) {
      const float a = std::fabs(orig[size_t(r * cols + c)]);
      if (w[size_t(r * cols + c)] == 0.0f) {
        max_pruned = std::max(max_pruned, a);
      } else {
        min_kept = std::min(min_kept, a);
        EXPECT_EQ(w[size_t(r * cols + c)], orig[size_t(r * cols + c)]);
      }
    }
    EXPECT_LE(max_pruned, min_kept) << "row " << r;
  }
}

TEST(PruneCriteria, LayerGroupZeroesTheSmallestOfTheWholeMatrix) {
  // Rows of very different scales: per layer, the small rows lose most of their weights.
  const int64_t rows = 10, cols = 30;
  std::vector<float> w = randn(rows * cols, 5);
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < cols; ++c) w[size_t(r * cols + c)] *= float(1 + r);
  const std::vector<float> orig = w;
  PruneSpec spec;
  spec.sparsity = 0.37;  // round(0.37 * 300) = 111
  spec.group = PruneGroup::kLayer;
  prune_linear(w.data(), rows, cols, spec, {});
  EXPECT_EQ(zeros_in(w.data(), rows * cols), 111);
  float max_pruned = 0, min_kept = 1e9f;
  for (size_t i = 0; i < w.size(); ++i) {
    if (w[i] == 0.0f) {
      max_pruned = std::max(max_pruned, std::fabs(orig[i]));
    } else {
      min_kept = std::min(min_kept, std::fabs(orig[i]));
      EXPECT_EQ(w[i], orig[i]);
    }
  }
  EXPECT_LE(max_pruned, min_kept);
  EXPECT_GT(zeros_in(w.data(), cols), zeros_in(w.data() + (rows - 1) * cols, cols)) << "the small row loses more";
  // Ties: the lower indices go first, so the count stays exact.
  std::vector<float> same(12, 1.0f);
  spec.sparsity = 0.5;
  prune_linear(same.data(), 3, 4, spec, {});
  EXPECT_EQ(same, (std::vector<float>{0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1}));
  // N:M ignores the group: each group of M still keeps N.
  std::vector<float> nm = randn(4 * 16, 6);
  PruneSpec p24 = *parse_nm_pattern("2:4");
  p24.group = PruneGroup::kLayer;
  prune_linear(nm.data(), 4, 16, p24, {});
  for (int64_t g = 0; g < 4 * 16; g += 4) EXPECT_EQ(zeros_in(nm.data() + g, 4), 2);
  EXPECT_EQ(*parse_prune_group("layer"), PruneGroup::kLayer);
  EXPECT_EQ(*parse_prune_group("row"), PruneGroup::kRow);
  EXPECT_FALSE(parse_prune_group("column").is_ok());
}

TEST(PruneCriteria, RiaScoresAreRelativeImportanceTimesRootNorm) {
  // w = [[1, 3], [2, 2]]: row sums 4, 4; column sums 3, 5; ‖X‖² = 16, 1 -> ‖X‖^0.5 = 2, 1.
  const std::vector<float> w = {1, 3, 2, 2};
  const std::vector<float> s = ria_scores(w.data(), 2, 2, {16, 1});
  const float want[4] = {(1.f / 4 + 1.f / 3) * 2, (3.f / 4 + 3.f / 5) * 1, (2.f / 4 + 2.f / 3) * 2, (2.f / 4 + 2.f / 5) * 1};
  for (int i = 0; i < 4; ++i) EXPECT_NEAR(s[size_t(i)], want[i], 1e-6) << i;
  EXPECT_EQ(*parse_prune_method("ria"), PruneMethod::kRia);
}

TEST(PruneCriteria, OwlGivesLayersWithMoreOutliersLowerSparsity) {
  EXPECT_DOUBLE_EQ(outlier_ratio({1, 1, 1, 1, 1, 1, 1, 1, 1, 100}, 5.0), 0.1);  // mean 10.9: only 100 is above 54.5
  const std::vector<double> d = {0.01, 0.03, 0.02, 0.01};
  const std::vector<double> s = owl_layer_sparsity(d, 0.5, 0.08);
  double mean = 0;
  for (double v : s) {
    mean += v / 4;
    EXPECT_GE(v, 0.5 - 2 * 0.08 - 1e-12);
    EXPECT_LE(v, 0.5 + 2 * 0.08 + 1e-12);
  }
  EXPECT_NEAR(mean, 0.5, 1e-12);
  EXPECT_LT(s[1], s[2]);
  EXPECT_LT(s[2], s[0]);
  EXPECT_DOUBLE_EQ(s[0], s[3]);
  EXPECT_NEAR(s[0] - s[1], 2 * 0.08, 1e-12) << "the range is 2λ";
  for (double v : owl_layer_sparsity({0.02, 0.02, 0.02}, 0.6, 0.08)) EXPECT_DOUBLE_EQ(v, 0.6) << "no spread: uniform";
}

TEST(PruneCriteria, NmPatternHoldsInEveryGroup) {
  for (auto [n, m] : {std::pair{2, 4}, std::pair{4, 8}, std::pair{1, 4}}) {
    const int64_t rows = 6, cols = 64;
    std::vector<float> w = randn(rows * cols, 2);
    PruneSpec spec;
    spec.n = n, spec.m = m;
    prune_linear(w.data(), rows, cols, spec, {});
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t g = 0; g < cols; g += m) EXPECT_EQ(m - zeros_in(w.data() + r * cols + g, m), n) << n << ":" << m;
  }
}

TEST(PruneCriteria, WandaKeepsSmallWeightsOnLoudInputs) {
  // Row: |w| = 1, 2, 3, 4; input norms² = 100, 1, 1, 1 -> scores 10, 2, 3, 4: column 1 goes, column 0 stays.
  std::vector<float> w = {1, 2, 3, 4};
  PruneSpec spec;
  spec.sparsity = 0.25;
  std::vector<float> mag = w;
  prune_linear(mag.data(), 1, 4, spec, {});
  EXPECT_EQ(mag, (std::vector<float>{0, 2, 3, 4}));
  prune_linear(w.data(), 1, 4, spec, {100, 1, 1, 1});
  EXPECT_EQ(w, (std::vector<float>{1, 0, 3, 4}));
}

TEST(PruneCriteria, SpecsAndPatternsAreValidated) {
  EXPECT_TRUE(parse_nm_pattern("2:4").is_ok());
  EXPECT_EQ(parse_nm_pattern("4:8")->m, 8);
  for (const char* bad : {"4:4", "5:4", "0:4", "2:", ":4", "2-4", "a:b", "2:4:8", "-1:4", ""})
    EXPECT_FALSE(parse_nm_pattern(bad).is_ok()) << bad;
  for (double s : {0.0, 1.0, -0.1, 1.5, std::nan("")}) {
    PruneSpec spec;
    spec.sparsity = s;
    EXPECT_FALSE(validate_prune_spec(spec).is_ok()) << s;
  }
  PruneSpec nm = *parse_nm_pattern("2:4");
  EXPECT_TRUE(check_prune_cols(nm, 64, "x").is_ok());
  const Status s = check_prune_cols(nm, 66, "model.layers.0.mlp.down_proj");
  ASSERT_FALSE(s.is_ok());
  EXPECT_NE(s.message().find("model.layers.0.mlp.down_proj"), std::string::npos) << s.message();
  EXPECT_FALSE(parse_prune_method("random").is_ok());
  EXPECT_EQ(*parse_prune_method("sparsegpt"), PruneMethod::kSparseGpt);
}

class SparseGptTest : public ::testing::Test {
 protected:
  SparseGptTest() : pool_(2), ctx_(pool_, CpuFeatures::detect()) {}
  // H = Σ xᵀx of calib_inputs.
  std::vector<double> hessian(const std::vector<float>& x, int64_t tokens, int64_t cols) {
    std::vector<double> h(size_t(cols * cols), 0.0);
    accumulate_gram(ctx_, x.data(), tokens, cols, h.data());
    return h;
  }
  ThreadPool pool_;
  ExecContext ctx_;
};

TEST_F(SparseGptTest, LowerOutputErrorThanMagnitudeAtFiftyPercentAndTwoFour) {
  const int64_t rows = 24, cols = 96, tokens = 400;
  const std::vector<float> w0 = randn(rows * cols, 3);
  const std::vector<float> x = calib_inputs(tokens, cols, 4);
  const std::vector<double> h = hessian(x, tokens, cols);
  for (const char* what : {"0.5", "2:4"}) {
    PruneSpec spec;
    if (std::string(what) == "2:4") spec = *parse_nm_pattern("2:4");
    else spec.sparsity = 0.5;
    std::vector<float> mag = w0, wanda = w0, sgpt = w0;
    prune_linear(mag.data(), rows, cols, spec, {});
    std::vector<double> sq(static_cast<size_t>(cols));
    for (int64_t c = 0; c < cols; ++c) sq[size_t(c)] = h[size_t(c * cols + c)];
    prune_linear(wanda.data(), rows, cols, spec, sq);
    SparseGptOptions opt;
    opt.block_size = 32;  // several mask-selection blocks
    ASSERT_TRUE(sparsegpt_prune(ctx_, sgpt.data(), rows, cols, h, spec, opt).is_ok());
    for (int64_t r = 0; r < rows; ++r) {
      EXPECT_EQ(zeros_in(sgpt.data() + r * cols, cols), cols / 2) << what << " row " << r;
      if (spec.nm())
        for (int64_t g = 0; g < cols; g += 4) EXPECT_EQ(zeros_in(sgpt.data() + r * cols + g, 4), 2) << what;
    }
    const double e_mag = output_error(x, tokens, mag, w0, rows, cols);
    const double e_wanda = output_error(x, tokens, wanda, w0, rows, cols);
    const double e_sgpt = output_error(x, tokens, sgpt, w0, rows, cols);
    EXPECT_LT(e_wanda, e_mag) << what;
    EXPECT_LT(e_sgpt, e_mag) << what;
    EXPECT_LT(e_sgpt, e_wanda) << what << ": the weight update adds to the mask choice";
  }
}

TEST_F(SparseGptTest, UnstructuredRowCountIsExactForAnyBlockSize) {
  const int64_t rows = 5, cols = 50, tokens = 200;
  const std::vector<float> x = calib_inputs(tokens, cols, 5);
  const std::vector<double> h = hessian(x, tokens, cols);
  for (int bs : {1, 7, 16, 128}) {
    std::vector<float> w = randn(rows * cols, 6);
    PruneSpec spec;
    spec.sparsity = 0.37;  // round(18.5) = 19 (half away from zero)
    SparseGptOptions opt;
    opt.block_size = bs;
    ASSERT_TRUE(sparsegpt_prune(ctx_, w.data(), rows, cols, h, spec, opt).is_ok());
    for (int64_t r = 0; r < rows; ++r) EXPECT_EQ(zeros_in(w.data() + r * cols, cols), pruned_per_row(spec, cols)) << bs;
  }
}

// --group layer: the reference's mask. The block's share of the matrix's zeros goes to the lowest
// saliencies of the whole [rows, block] tile, so a row of small weights loses more than a row of
// large ones, the matrix's count is exact, and the OBS update still beats layer-wise magnitude.
TEST_F(SparseGptTest, TileMaskCountsTheMatrixAndLetsRowsDiffer) {
  const int64_t rows = 24, cols = 96, tokens = 400;
  std::vector<float> w0 = randn(rows * cols, 7);
  for (int64_t r = 0; r < rows; ++r)  // rows 0..11 small, 12..23 large
    for (int64_t c = 0; c < cols; ++c) w0[size_t(r * cols + c)] *= r < rows / 2 ? 0.5f : 2.0f;
  const std::vector<float> x = calib_inputs(tokens, cols, 8);
  const std::vector<double> h = hessian(x, tokens, cols);
  PruneSpec spec;
  spec.sparsity = 0.4;
  spec.group = PruneGroup::kLayer;
  SparseGptOptions opt;
  opt.block_size = 32;
  std::vector<float> tile = w0, mag = w0;
  ASSERT_TRUE(sparsegpt_prune(ctx_, tile.data(), rows, cols, h, spec, opt).is_ok());
  prune_linear(mag.data(), rows, cols, spec, {});
  int64_t small = 0, large = 0;
  for (int64_t r = 0; r < rows; ++r) (r < rows / 2 ? small : large) += zeros_in(tile.data() + r * cols, cols);
  EXPECT_EQ(small + large, std::llround(0.4 * rows * cols)) << "the matrix's zeros, exactly";
  EXPECT_GT(small, large + rows / 2 * cols / 4) << "the small rows lose far more than the large ones";
  EXPECT_LT(output_error(x, tokens, tile, w0, rows, cols), output_error(x, tokens, mag, w0, rows, cols));
  // N:M ignores the group: still exactly 2 of every 4.
  spec = *parse_nm_pattern("2:4");
  spec.group = PruneGroup::kLayer;
  std::vector<float> nm = w0;
  ASSERT_TRUE(sparsegpt_prune(ctx_, nm.data(), rows, cols, h, spec, opt).is_ok());
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t g = 0; g < cols; g += 4) EXPECT_EQ(zeros_in(nm.data() + r * cols + g, 4), 2);
}

TEST_F(SparseGptTest, BadShapesAreErrors) {
  std::vector<float> w(8 * 6, 1.0f);
  PruneSpec spec = *parse_nm_pattern("2:4");
  EXPECT_FALSE(sparsegpt_prune(ctx_, w.data(), 8, 6, std::vector<double>(36, 0.0), spec).is_ok());  // 4 does not divide 6
  spec = PruneSpec{};
  EXPECT_FALSE(sparsegpt_prune(ctx_, w.data(), 8, 6, std::vector<double>(35, 0.0), spec).is_ok());  // Hessian size
}

}  // namespace
}  // namespace tern
