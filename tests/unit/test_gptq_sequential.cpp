// Sequential GPTQ on docs-llama-28m with a tiny calibration budget: the calibration filter collects
// only the stage asked for, the source model is left alone, and quantizing each stage on the outputs
// of the already-quantized layers lowers the whole model's output error at 3 bits (KL from the base model on
// the calibration windows, the objective both variants fit) below plain GPTQ's.
#include <gtest/gtest.h>

#include "compress/calibration.h"
#include "compress/gptq.h"
#include "core/cpu_features.h"
#include "core/mapped_file.h"
#include "core/thread_pool.h"
#include "eval/quality.h"
#include "docs_val_halves.h"
#include "test_support.h"

namespace tern {
namespace {

class GptqSequentialTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new std::string(test::model_dir("docs-llama-28m"));
    pool_ = new ThreadPool(2);
    ctx_ = new ExecContext(*pool_, CpuFeatures::detect());
    calib_tokens_ = new std::vector<int32_t>(test::docs_val_halves(*dir_).calib);  // calibration text only
    ASSERT_FALSE(calib_tokens_->empty());
    auto windows = calibration_windows(*calib_tokens_, 128, 4);
    ASSERT_TRUE(windows.is_ok());
    windows_ = new std::vector<std::vector<int32_t>>(std::move(windows).value());
  }
  static void TearDownTestSuite() { delete windows_, delete calib_tokens_, delete ctx_, delete pool_, delete dir_; }

  static inline std::string* dir_;
  static inline ThreadPool* pool_;
  static inline ExecContext* ctx_;
  static inline std::vector<int32_t>* calib_tokens_;
  static inline std::vector<std::vector<int32_t>>* windows_;
};

TEST_F(GptqSequentialTest, CalibrationCollectsOnlyTheStageAsked) {
  auto m = Model::load(*dir_);
  ASSERT_TRUE(m.is_ok());
  CalibrationOptions copt;
  copt.hessian = true;
  copt.only_layer = 3;
  copt.slot_mask = 1u << unsigned(LinearInput::kMlpDown);
  std::vector<std::vector<int32_t>> one(windows_->begin(), windows_->begin() + 1);
  auto st = calibrate(**m, *ctx_, one, copt);
  ASSERT_TRUE(st.is_ok()) << st.status().message();
  for (int l = 0; l < 8; ++l)
    for (int s = 0; s < 4; ++s) {
      const SlotStats& ss = st->at(l, LinearInput(s));
      const bool wanted = l == 3 && LinearInput(s) == LinearInput::kMlpDown;
      EXPECT_EQ(ss.rows, wanted ? 128 : 0) << l << " " << s;
      EXPECT_EQ(ss.xtx.size(), wanted ? size_t(1408 * 1408) : size_t(0)) << l << " " << s;
    }
  // The same slot as an unfiltered pass collects it.
  CalibrationOptions all;
  all.hessian = true;
  auto full = calibrate(**m, *ctx_, one, all);
  ASSERT_TRUE(full.is_ok());
  EXPECT_EQ(full->at(3, LinearInput::kMlpDown).xtx, st->at(3, LinearInput::kMlpDown).xtx);
}

TEST_F(GptqSequentialTest, SequentialLowersTheOutputErrorOfPlainGptq) {
  auto base = Model::load(*dir_);
  ASSERT_TRUE(base.is_ok());
  const TransformerWeights before = (*base)->weights();
  GptqOptions opt;
  opt.spec = QuantSpec{3, 128, false};  // 3 bits: errors large enough for their propagation to matter
  CalibrationOptions copt;
  copt.hessian = true;
  auto stats = calibrate(**base, *ctx_, *windows_, copt);
  ASSERT_TRUE(stats.is_ok());
  auto plain = quantize_model_gptq(**base, *ctx_, *stats, opt);
  ASSERT_TRUE(plain.is_ok()) << plain.status().message();
  int64_t stages = 0, total = 0;
  opt.on_layer = [&](int64_t done, int64_t t) { stages = done, total = t; };
  auto seq = quantize_model_gptq_sequential(**base, *ctx_, *windows_, CalibrationOptions{}, opt);
  ASSERT_TRUE(seq.is_ok()) << seq.status().message();
  EXPECT_EQ(total, 8 * 4);
  EXPECT_EQ(stages, total);
  EXPECT_EQ(seq->linears.size(), plain->linears.size());
  // The source model still computes with its own weights.
  EXPECT_EQ((*base)->weights().layers[5].mlp.down.data, before.layers[5].mlp.down.data);
  // The first stage saw exactly the base model's inputs: q/k/v of layer 0 are plain GPTQ's.
  EXPECT_EQ(seq->linears.at("model.layers.0.self_attn.k_proj").q, plain->linears.at("model.layers.0.self_attn.k_proj").q);
  EXPECT_NE(seq->linears.at("model.layers.5.mlp.down_proj").q, plain->linears.at("model.layers.5.mlp.down_proj").q);

  // Output error on the calibration windows (KL of the next-token distributions from the base model's).
  PerplexityOptions popt;
  popt.ctx = 128;
  popt.max_windows = 4;
  std::vector<int32_t> calib(calib_tokens_->begin(), calib_tokens_->begin() + 4 * 128);
  auto b = record_base_logits(**base, *ctx_, calib, popt, 64);
  ASSERT_TRUE(b.is_ok()) << b.status().message();
  auto kl = [&](const QuantizedModel& qm) {
    auto m = Model::load(*dir_);
    EXPECT_TRUE(apply_dequantized(**m, qm).is_ok());
    auto q = compare_with_base(**m, *ctx_, calib, popt, *b);
    EXPECT_TRUE(q.is_ok());
    return q.is_ok() ? q->kl.kl_mean : 1e9;
  };
  const double kl_plain = kl(*plain), kl_seq = kl(*seq);
  EXPECT_GT(kl_seq, 0.0);
  EXPECT_LT(kl_seq, 0.9 * kl_plain) << "sequential " << kl_seq << " plain " << kl_plain;
}

TEST_F(GptqSequentialTest, RejectsBadInput) {
  auto base = Model::load(*dir_);
  ASSERT_TRUE(base.is_ok());
  GptqOptions opt;
  opt.spec = QuantSpec{4, 128, false};
  EXPECT_FALSE(quantize_model_gptq_sequential(**base, *ctx_, {}, CalibrationOptions{}, opt).is_ok());
  EXPECT_FALSE(
      quantize_model_gptq_sequential(**base, *ctx_, *windows_, CalibrationOptions{}, opt, GptqSequential::kOff).is_ok());
  MethodOptions mo;
  mo.sequential = 3;
  CalibData calib;
  calib.tokens = *calib_tokens_;
  EXPECT_FALSE(gptq_quantize(*ctx_, **base, calib, opt.spec, mo).is_ok());
}

}  // namespace
}  // namespace tern
