// The LM head quantized at load time (Model::load options, model/model.h LmHeadFormat): int8 by
// default for a quantized checkpoint, dense for a dense one, int8 / int4 / dense on request; the tied
// embedding keeps its dense rows; logits stay close to the dense head's; bad input is a Status.
#include <gtest/gtest.h>

#include <cmath>

#include "../model_test_util.h"
#include "../test_support.h"
#include "compress/checkpoint_writer.h"
#include "formats/quant/pack_weights.h"
#include "formats/quant/quantized_linear.h"
#include "model/model.h"

namespace tern {
namespace {

double rel_rms(const std::vector<float>& a, const std::vector<float>& b) {
  double num = 0, den = 0;
  for (size_t i = 0; i < a.size(); ++i) num += (a[i] - b[i]) * (a[i] - b[i]), den += double(a[i]) * a[i];
  return std::sqrt(num / den);
}

TEST(LmHeadQuant, ParsesTheOptionAndRejectsUnknownValues) {
  EXPECT_EQ(parse_lm_head_format("auto").value(), LmHeadFormat::Auto);
  EXPECT_EQ(parse_lm_head_format("dense").value(), LmHeadFormat::Dense);
  EXPECT_EQ(parse_lm_head_format("int8").value(), LmHeadFormat::Int8);
  EXPECT_EQ(parse_lm_head_format("int4").value(), LmHeadFormat::Int4);
  auto bad = parse_lm_head_format("int3");
  ASSERT_FALSE(bad.is_ok());
  EXPECT_NE(bad.status().message().find("int3"), std::string::npos);
}

TEST(LmHeadQuant, DenseCheckpointKeepsItsHeadUnlessAsked) {
  const std::string dir = test::tiny_arch_dir("llama_tied");
  auto dense = Model::load(dir).value();
  EXPECT_EQ(dense->weights().lm_head.format, WeightFormat::Dense);
  EXPECT_EQ(dense->weights().lm_head.data, dense->weights().embed.data);  // tied: one storage

  ThreadPool pool(2);
  ExecContext ctx(pool, CpuFeatures::detect());
  const std::vector<int32_t> ids = {5, 17, 300, 2, 999, 64, 8};
  const auto ref = test::all_logits(*dense, ctx, ids);
  struct Case {
    LmHeadFormat f;
    WeightFormat expect;
    double max_err;
  };
  for (const Case& c : {Case{LmHeadFormat::Int8, WeightFormat::Int8Channel, 0.02},
                        Case{LmHeadFormat::Int4, WeightFormat::Int4Group, 0.25}}) {
    ModelLoadOptions o;
    o.lm_head = c.f;
    auto m = Model::load(dir, o).value();
    const WeightMatrix& head = m->weights().lm_head;
    EXPECT_EQ(head.format, c.expect);
    EXPECT_EQ(head.rows, dense->weights().lm_head.rows);
    EXPECT_EQ(head.cols, dense->weights().lm_head.cols);
    if (c.f == LmHeadFormat::Int4) EXPECT_EQ(head.group, 64);  // hidden 64: the largest of 128/64/32 dividing it
    // The embedding lookup still reads the dense (mmapped) rows.
    EXPECT_EQ(m->weights().embed.format, WeightFormat::Dense);
    EXPECT_NE(m->weights().embed.data, head.data);
    EXPECT_LT(m->weight_bytes_per_token(), dense->weight_bytes_per_token());
    const auto got = test::all_logits(*m, ctx, ids);
    ASSERT_EQ(got.size(), ref.size());
    const double err = rel_rms(ref, got);
    EXPECT_GT(err, 0.0);  // it really is a different (quantized) head
    EXPECT_LT(err, c.max_err);
  }
}

TEST(LmHeadQuant, QuantizedCheckpointGetsInt8HeadByDefault) {
  auto base = Model::load(test::tiny_arch_dir("llama_tied")).value();
  test::TempDir out;
  QuantConfig layout;
  layout.method = QuantMethod::Gptq, layout.bits = 4, layout.group = 32, layout.symmetric = true;
  LinearQuantizer q = [&](const std::string&, const float* w, int64_t rows, int64_t cols) {
    return quantize_rtn(w, rows, cols, 4, 32, true);
  };
  CheckpointWriteOptions wo;
  wo.out_dir = out.path();
  ASSERT_TRUE(write_quantized_checkpoint(*base, layout, q, wo, [](int64_t, int64_t) {}).is_ok());

  auto by_default = Model::load(out.path()).value();
  EXPECT_EQ(by_default->weights().lm_head.format, WeightFormat::Int8Channel);
  EXPECT_FALSE(by_default->weights().lm_head.int8_activations);  // W8A16: x stays f32
  ModelLoadOptions keep;
  keep.lm_head = LmHeadFormat::Dense;
  auto dense_head = Model::load(out.path(), keep).value();
  EXPECT_EQ(dense_head->weights().lm_head.format, WeightFormat::Dense);
  const int64_t head_params = base->config().vocab_size * base->config().hidden_size;
  // bf16/f32 head -> int8 codes + one f32 scale per row.
  EXPECT_EQ(dense_head->weight_bytes_per_token() - by_default->weight_bytes_per_token(),
            int64_t(dense_head->weights().lm_head.bytes()) - (head_params + base->config().vocab_size * 4));
}

TEST(LmHeadQuant, QuantizeDenseRejectsWhatTheKernelsCannotRun) {
  std::vector<float> w(4 * 96, 0.5f);
  const WeightMatrix dense{w.data(), DType::F32, 4, 96};
  WeightArena arena;
  EXPECT_FALSE(quantize_dense_for_kernels(dense, 3, 32, arena, "lm_head").is_ok());
  auto bad_group = quantize_dense_for_kernels(dense, 4, 64, arena, "lm_head");  // 64 does not divide 96
  ASSERT_FALSE(bad_group.is_ok());
  EXPECT_NE(bad_group.status().message().find("lm_head"), std::string::npos);
  EXPECT_TRUE(quantize_dense_for_kernels(dense, 4, 32, arena, "lm_head").is_ok());
  EXPECT_TRUE(quantize_dense_for_kernels(dense, 8, 0, arena, "lm_head").is_ok());
}

}  // namespace
}  // namespace tern
