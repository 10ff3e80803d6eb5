// Calibration and the quantization methods end to end on docs-llama-28m (tiny budgets): calibrate on
// the first half of docs-val.txt, evaluate on windows of the second half (never the calibration text),
// and check that AWQ and GPTQ beat RTN on KL divergence from the base model.
#include <gtest/gtest.h>

#include "compress/awq.h"
#include "compress/calibration.h"
#include "compress/gptq.h"
#include "compress/smoothquant.h"
#include "core/cpu_features.h"
#include "core/mapped_file.h"
#include "core/thread_pool.h"
#include "eval/quality.h"
#include "docs_val_halves.h"
#include "test_support.h"

namespace tern {
namespace {

class QuantModel : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new std::string(test::model_dir("docs-llama-28m"));
    pool_ = new ThreadPool(2);
    ctx_ = new ExecContext(*pool_, CpuFeatures::detect());
    test::DocsValHalves text = test::docs_val_halves(*dir_);
    ASSERT_FALSE(text.calib.empty());
    calib_tokens_ = new std::vector<int32_t>(std::move(text.calib));
    eval_tokens_ = new std::vector<int32_t>(std::move(text.eval));
    auto base = Model::load(*dir_);
    ASSERT_TRUE(base.is_ok());
    popt_.ctx = 256;
    popt_.max_windows = 2;
    auto b = record_base_logits(**base, *ctx_, *eval_tokens_, popt_, 64);
    ASSERT_TRUE(b.is_ok()) << b.status().message();
    base_ = new BaseLogits(std::move(b).value());
    auto windows = calibration_windows(*calib_tokens_, 256, 8);
    ASSERT_TRUE(windows.is_ok());
    CalibrationOptions copt;
    copt.hessian = true;
    copt.sample_rows = 256;
    auto st = calibrate(**base, *ctx_, *windows, copt);
    ASSERT_TRUE(st.is_ok()) << st.status().message();
    stats_ = new CalibrationStats(std::move(st).value());
  }
  static void TearDownTestSuite() {
    delete stats_, delete base_, delete eval_tokens_, delete calib_tokens_, delete ctx_, delete pool_, delete dir_;
  }

  // Quality of `qm` applied to a fresh copy of the model.
  static QualityResult quality(const QuantizedModel& qm) {
    auto m = Model::load(*dir_);
    EXPECT_TRUE(m.is_ok());
    EXPECT_TRUE(apply_dequantized(**m, qm).is_ok());
    PerplexityOptions opt = popt_;
    auto fq = activation_fake_quant();
    if (qm.int8_activations) opt.observer = fq.get();
    auto q = compare_with_base(**m, *ctx_, *eval_tokens_, opt, *base_);
    EXPECT_TRUE(q.is_ok()) << q.status().message();
    return q.is_ok() ? *q : QualityResult{};
  }

  static inline std::string* dir_;
  static inline ThreadPool* pool_;
  static inline ExecContext* ctx_;
  static inline std::vector<int32_t>*calib_tokens_, *eval_tokens_;
  static inline PerplexityOptions popt_;
  static inline BaseLogits* base_;
  static inline CalibrationStats* stats_;
};

TEST_F(QuantModel, CalibrationCollectsEveryLayerAndSlot) {
  const auto& cfg = Model::load(*dir_).value()->config();
  ASSERT_EQ(stats_->layers.size(), size_t(cfg.n_layers));
  EXPECT_EQ(stats_->tokens, 8 * 256);
  const SlotStats& down = stats_->at(3, LinearInput::kMlpDown);
  EXPECT_EQ(down.cols, cfg.intermediate_size);
  EXPECT_EQ(down.rows, 8 * 256);
  EXPECT_EQ(down.n_sample(), 256);
  EXPECT_EQ(down.xtx.size(), size_t(down.cols * down.cols));
  // The diagonal of XᵀX is Σ x², at least (Σ|x|)² / rows.
  for (int64_t c = 0; c < down.cols; c += 97) {
    EXPECT_GE(down.xtx[size_t(c * down.cols + c)] * 1.001, down.abs_sum[size_t(c)] * down.abs_sum[size_t(c)] / 2048.0);
    EXPECT_LE(down.mean_abs()[size_t(c)], down.abs_max[size_t(c)]);
  }
  EXPECT_FALSE(calibration_windows({}, 256, 4).is_ok());
  EXPECT_FALSE(calibration_windows(*calib_tokens_, 1, 4).is_ok());
  EXPECT_EQ(calibration_windows({1, 2, 3}, 256, 4)->size(), 1u);  // short text: one short window
}

TEST_F(QuantModel, SelfComparisonIsExact) {
  auto m = Model::load(*dir_);
  ASSERT_TRUE(m.is_ok());
  auto q = compare_with_base(**m, *ctx_, *eval_tokens_, popt_, *base_);
  ASSERT_TRUE(q.is_ok());
  EXPECT_NEAR(q->kl.kl_mean, 0.0, 1e-6);
  EXPECT_EQ(q->kl.top1, 1.0);
  EXPECT_NEAR(q->ppl.ppl, q->base_ppl, 1e-3);
  // Different text is refused.
  std::vector<int32_t> other(eval_tokens_->begin() + 1, eval_tokens_->end());
  EXPECT_FALSE(compare_with_base(**m, *ctx_, other, popt_, *base_).is_ok());
}

// End to end with small budgets: every linear quantized, evaluated on unseen text. (Which method wins
// end to end needs realistic calibration; bench_quant_quality measures that, see docs/benchmarks.md.)
TEST_F(QuantModel, AwqAndGptqQuantizeTheWholeModel) {
  const QuantSpec spec{4, 128, false};
  auto base = Model::load(*dir_);
  auto rtn = quantize_model_rtn(**base, spec);
  ASSERT_TRUE(rtn.is_ok());
  AwqOptions aopt;
  aopt.spec = spec;
  aopt.grid = 4;
  aopt.clip = false;
  int layers_seen = 0;
  aopt.on_layer = [&](int64_t done, int64_t total) {
    layers_seen = int(done);
    EXPECT_EQ(total, 8);
  };
  auto awq = quantize_model_awq(**base, *ctx_, *stats_, aopt);
  ASSERT_TRUE(awq.is_ok()) << awq.status().message();
  EXPECT_EQ(layers_seen, 8);
  // The scales went into the norms, not into a run-time division.
  EXPECT_EQ(awq->linears.size(), size_t(8 * 7));
  EXPECT_NE(awq->vectors.at("model.layers.0.input_layernorm.weight"), (*base)->weights().layers[0].attn_norm.weight);
  EXPECT_EQ(awq->vectors.size(), size_t(8 * 2));
  for (const auto& [name, q] : awq->linears) EXPECT_TRUE(q.smooth.empty()) << name;
  GptqOptions gopt;
  gopt.spec = spec;
  gopt.act_order = true;
  auto gptq = quantize_model_gptq(**base, *ctx_, *stats_, gopt);
  ASSERT_TRUE(gptq.is_ok()) << gptq.status().message();
  EXPECT_EQ(gptq->linears.at("model.layers.0.mlp.down_proj").g_idx.size(), size_t(1408));
  EXPECT_TRUE(gptq->vectors.empty());

  const QualityResult q_rtn = quality(*rtn), q_awq = quality(*awq), q_gptq = quality(*gptq);
  EXPECT_GT(q_rtn.kl.kl_mean, 0.0);
  for (const QualityResult* q : {&q_awq, &q_gptq}) {
    EXPECT_GT(q->kl.kl_mean, 0.0);
    EXPECT_LT(q->kl.kl_mean, 2 * q_rtn.kl.kl_mean);
    EXPECT_GT(q->kl.top1, 0.8);
  }
}

// GPTQ minimises tr((W - Q) H (W - Q)ᵀ) for the calibration Hessian: on a real layer it must be well
// below round-to-nearest's.
TEST_F(QuantModel, GptqLowersTheLayerObjectiveOnRealActivations) {
  auto base = Model::load(*dir_);
  const WeightMatrix& w = (*base)->weights().layers[1].attn.q;
  auto f = weight_to_f32(w);
  ASSERT_TRUE(f.is_ok());
  const SlotStats& st = stats_->at(1, LinearInput::kAttnIn);
  GptqOptions opt;
  opt.spec = QuantSpec{4, 128, false};
  auto g = gptq_quantize_linear(*ctx_, f->data(), w.rows, w.cols, st.xtx, opt);
  auto r = quantize_rtn(f->data(), w.rows, w.cols, opt.spec);
  ASSERT_TRUE(g.is_ok() && r.is_ok());
  auto objective = [&](const std::vector<float>& dq) {
    const int64_t n = w.cols;
    double total = 0;
    std::vector<double> d(static_cast<size_t>(n));
    for (int64_t row = 0; row < w.rows; ++row) {
      for (int64_t c = 0; c < n; ++c) d[size_t(c)] = double((*f)[size_t(row * n + c)]) - dq[size_t(row * n + c)];
      for (int64_t i = 0; i < n; ++i) {
        double s = 0;
        for (int64_t j = 0; j < n; ++j) s += st.xtx[size_t(i * n + j)] * d[size_t(j)];
        total += d[size_t(i)] * s;
      }
    }
    return total;
  };
  EXPECT_LT(objective(dequantize(*g)), 0.8 * objective(dequantize(*r)));
}

// Through the entry point `tern quantize --method smoothquant` calls (calibration included).
TEST_F(QuantModel, SmoothQuantW8A8StaysClose) {
  auto base = Model::load(*dir_);
  CalibData calib;
  calib.tokens = *calib_tokens_;
  calib.seq_len = 256;
  calib.max_windows = 4;
  int64_t last_done = 0, last_total = 0;
  auto sq = smoothquant_quantize(*ctx_, **base, calib, QuantSpec{8, 0, true}, MethodOptions{},
                                 [&](int64_t done, int64_t total) { last_done = done, last_total = total; });
  ASSERT_TRUE(sq.is_ok()) << sq.status().message();
  EXPECT_EQ(last_total, 4 + 8);
  EXPECT_EQ(last_done, last_total);
  EXPECT_TRUE(sq->int8_activations);
  const QualityResult q = quality(*sq);
  EXPECT_GT(q.kl.kl_mean, 0.0);
  EXPECT_LT(q.kl.kl_mean, 0.01);
  EXPECT_GT(q.kl.top1, 0.95);
  EXPECT_LT(q.ppl.ppl, q.base_ppl * 1.01);
}

TEST_F(QuantModel, MethodsRejectMismatchedCalibration) {
  auto base = Model::load(*dir_);
  CalibrationStats empty;
  EXPECT_FALSE(quantize_model_gptq(**base, *ctx_, empty, GptqOptions{}).is_ok());
  EXPECT_FALSE(quantize_model_awq(**base, *ctx_, empty, AwqOptions{}).is_ok());
  EXPECT_FALSE(quantize_model_smoothquant(**base, empty, SmoothQuantOptions{}).is_ok());
  EXPECT_FALSE(quantize_model_rtn(**base, QuantSpec{4, 100, true}).is_ok());  // 100 does not divide 512
  CalibData none;  // no calibration text
  EXPECT_FALSE(awq_quantize(*ctx_, **base, none, QuantSpec{}, MethodOptions{}).is_ok());
  EXPECT_FALSE(gptq_quantize(*ctx_, **base, none, QuantSpec{}, MethodOptions{}).is_ok());
  QuantizedModel stray;
  stray.linears["model.layers.99.mlp.up_proj"] = QuantizedLinear{};
  EXPECT_FALSE(apply_dequantized(**base, stray).is_ok());
}

}  // namespace
}  // namespace tern
