// Mixed precision (compressed-tensors config groups with per-module targets), the int8 tied embedding,
// asymmetric pack-quantized zero points, GPTQ's MSE clipping / static groups, and SmoothQuant's folding
// of o_proj's scale into v_proj (exact before rounding).
#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "../model_test_util.h"
#include "../test_support.h"
#include "compress/calibration.h"
#include "compress/checkpoint_writer.h"
#include "compress/gptq.h"
#include "compress/mixed_precision.h"
#include "compress/model_linears.h"
#include "formats/quant/quant_config.h"
#include "compress/smoothquant.h"
#include "core/cpu_features.h"
#include "core/thread_pool.h"

namespace tern {
namespace {

using test::TempDir;

double rel_err(const std::vector<float>& a, const std::vector<float>& b) {
  double num = 0, den = 0;
  for (size_t i = 0; i < a.size(); ++i) num += (a[i] - b[i]) * (a[i] - b[i]), den += double(a[i]) * a[i];
  return std::sqrt(num / den);
}

TEST(MixedPrecision, ModuleTargetsMatchLikeCompressedTensors) {
  const std::string v = "model.layers.3.self_attn.v_proj", d = "model.layers.13.mlp.down_proj";
  EXPECT_TRUE(module_matches(v, v));
  EXPECT_TRUE(module_matches(v, "v_proj"));
  EXPECT_TRUE(module_matches(v, "layers.3.self_attn.v_proj"));
  EXPECT_FALSE(module_matches(d, "layers.3.mlp.down_proj"));  // a tail starts at a '.', so 13 is not 3
  EXPECT_TRUE(module_matches(d, "re:.*layers\\.1[0-9]\\.mlp\\.down_proj"));
  EXPECT_FALSE(module_matches(v, "re:.*down_proj"));
  EXPECT_TRUE(module_matches(v, "Linear"));
  EXPECT_FALSE(module_matches(kEmbedModule, "Linear"));
  EXPECT_TRUE(module_matches(kEmbedModule, "Embedding"));
  EXPECT_FALSE(module_matches(v, "re:(unclosed"));  // invalid patterns match nothing
  EXPECT_EQ(split_targets("a,,b"), (std::vector<std::string>{"a", "b"}));
  MixedPrecision mp;
  mp.high_targets = {"v_proj"};
  EXPECT_EQ(mp.module_spec(v).bits, 8);
  EXPECT_EQ(mp.module_spec(d).bits, 4);
}

TEST(MixedPrecision, ConfigGroupsRoundTripThroughJson) {
  QuantConfig c;
  c.method = QuantMethod::CompressedTensors, c.ct_format = "pack-quantized", c.ignore = {"lm_head"};
  c.bits = 4, c.group = 128, c.symmetric = false;
  c.schemes = {QuantScheme{{"model.layers.0.self_attn.q_proj", "re:.*up_proj"}, 4, 128, false},
               QuantScheme{{"model.layers.0.self_attn.v_proj", kEmbedModule}, 8, 0, true}};
  const auto j = quant_config_to_json(c);
  ASSERT_EQ(j["config_groups"].size(), 2u);
  EXPECT_EQ(j["config_groups"]["group_1"]["weights"]["strategy"], "channel");
  auto back = parse_quant_config(nlohmann::json::parse(j.dump()), "config.json");
  ASSERT_TRUE(back.is_ok()) << back.status().message();
  ASSERT_EQ(back->schemes.size(), 2u);
  EXPECT_EQ(back->schemes[1].targets, c.schemes[1].targets);
  EXPECT_EQ(back->bits, 4);
  EXPECT_FALSE(back->symmetric);
  const QuantConfig v = back->for_module("model.layers.0.self_attn.v_proj");
  EXPECT_EQ(v.bits, 8);
  EXPECT_EQ(v.group, 0);
  EXPECT_TRUE(v.symmetric);
  EXPECT_EQ(back->for_module("model.layers.5.mlp.up_proj").group, 128);
  EXPECT_TRUE(back->targets(kEmbedModule));
  EXPECT_FALSE(back->targets("model.layers.0.self_attn.k_proj"));  // in no group: left dense

  // Groups that differ in more than integer width, and bad regexes, are one-line errors.
  auto bad = nlohmann::json::parse(j.dump());
  bad["config_groups"]["group_1"]["input_activations"] = {{"type", "int"}, {"dynamic", true}, {"num_bits", 8}};
  auto r = parse_quant_config(bad, "config.json");
  ASSERT_FALSE(r.is_ok());
  EXPECT_NE(r.status().message().find("groups differ"), std::string::npos) << r.status().message();
  bad = nlohmann::json::parse(j.dump());
  bad["config_groups"]["group_0"]["targets"] = {"re:(x"};
  r = parse_quant_config(bad, "config.json");
  ASSERT_FALSE(r.is_ok());
  EXPECT_NE(r.status().message().find("regular expression"), std::string::npos) << r.status().message();
}

// Tied tiny llama -> int4 g32 asymmetric, v_proj int8, embedding (= LM head) int8 -> Model::load ->
// the same logits as the quantized weights computed in memory.
TEST(MixedPrecision, TiedEmbeddingAndInt8LinearsLoadBack) {
  auto base = Model::load(test::tiny_arch_dir("llama_tied")).value();
  QuantConfig c;
  c.method = QuantMethod::CompressedTensors, c.ct_format = "pack-quantized", c.ignore = {"lm_head"};
  c.bits = 4, c.group = 32, c.symmetric = false;
  QuantScheme lo{{}, 4, 32, false}, hi{{}, 8, 0, true};
  const auto& layers = base->weights().layers;
  for (size_t l = 0; l < layers.size(); ++l)
    for (LinearKind k : kAllLinears)
      (k == LinearKind::kV ? hi : lo).targets.push_back(linear_module_name(int(l), k));
  hi.targets.push_back(kEmbedModule);
  c.schemes = {lo, hi};
  ASSERT_EQ(quantizable_modules(*base, c).value().size(), layers.size() * 7 + 1);

  QuantizedModel qm;  // what the writer is given, also applied in memory below
  LinearQuantizer q = [&](const std::string& module, const float* w, int64_t rows, int64_t cols) -> Result<QuantizedLinear> {
    const QuantConfig mc = c.for_module(module);
    auto ql = quantize_rtn(w, rows, cols, QuantSpec{mc.bits, mc.group, mc.symmetric});
    if (ql.is_ok()) qm.linears[module] = *ql;
    return ql;
  };
  TempDir out;
  CheckpointWriteOptions wo;
  wo.out_dir = out.path();
  Status s = write_quantized_checkpoint(*base, c, q, wo);
  ASSERT_TRUE(s.is_ok()) << s.message();
  ASSERT_TRUE(qm.linears.count(kEmbedModule));

  auto loaded = Model::load(out.path());
  ASSERT_TRUE(loaded.is_ok()) << loaded.status().message();
  const TransformerWeights& w = (*loaded)->weights();
  EXPECT_EQ(w.embed.format, WeightFormat::Int8Channel);
  EXPECT_EQ(w.lm_head.data, w.embed.data);  // still tied
  EXPECT_EQ(w.layers[0].attn.v.format, WeightFormat::Int8Channel);
  EXPECT_EQ(w.layers[0].attn.q.format, WeightFormat::Int4Group);
  EXPECT_NE(w.layers[1].mlp.down.zeros, nullptr);  // asymmetric zero points came back

  auto mem = Model::load(test::tiny_arch_dir("llama_tied")).value();
  ASSERT_TRUE(apply_dequantized(*mem, qm).is_ok());
  ThreadPool pool(2);
  ExecContext ctx(pool, CpuFeatures::detect());
  const std::vector<int32_t> ids = {5, 17, 300, 2, 999, 64, 8};
  const auto a = test::all_logits(*base, ctx, ids), b = test::all_logits(**loaded, ctx, ids),
             m = test::all_logits(*mem, ctx, ids);
  EXPECT_GT(rel_err(a, b), 1e-4);  // it is quantized
  EXPECT_LT(rel_err(a, b), 0.25);
  // The kernels compute what the dequantized weights do (int4 kernels round x to int8 per block).
  EXPECT_LT(rel_err(m, b), 0.03);
}

TEST(MixedPrecision, Int4EmbeddingIsAClearError) {
  auto base = Model::load(test::tiny_arch_dir("llama_tied")).value();
  QuantConfig c;
  c.method = QuantMethod::CompressedTensors, c.ct_format = "pack-quantized", c.ignore = {"lm_head"};
  c.schemes = {QuantScheme{{"Linear"}, 4, 32, true}, QuantScheme{{kEmbedModule}, 4, 32, true}};
  LinearQuantizer q = [&](const std::string&, const float* w, int64_t rows, int64_t cols) {
    return quantize_rtn(w, rows, cols, QuantSpec{4, 32, true});
  };
  TempDir out;
  CheckpointWriteOptions wo;
  wo.out_dir = out.path();
  ASSERT_TRUE(write_quantized_checkpoint(*base, c, q, wo).is_ok());
  auto r = Model::load(out.path());
  ASSERT_FALSE(r.is_ok());
  EXPECT_NE(r.status().message().find("embed_tokens"), std::string::npos) << r.status().message();
}

TEST(GptqOptions, MseClipNeverRaisesTheRoundingError) {
  // H = I: no error feedback, so GPTQ is round-to-nearest with its group ranges; the MSE search can
  // only lower the squared error (the unclipped range is one of its candidates).
  std::mt19937 rng(7);
  std::student_t_distribution<float> heavy(3.0f);  // heavy tails: clipping pays
  const int64_t rows = 16, cols = 128;
  std::vector<float> w(size_t(rows * cols));
  for (auto& x : w) x = 0.05f * heavy(rng);
  std::vector<double> h(size_t(cols * cols), 0.0);
  for (int64_t i = 0; i < cols; ++i) h[size_t(i * cols + i)] = 1.0;
  ThreadPool pool(1);
  ExecContext ctx(pool, CpuFeatures::detect());
  GptqOptions o;
  o.spec = QuantSpec{4, 32, false};
  auto plain = gptq_quantize_linear(ctx, w.data(), rows, cols, h, o);
  o.mse_clip = true;
  auto clipped = gptq_quantize_linear(ctx, w.data(), rows, cols, h, o);
  ASSERT_TRUE(plain.is_ok() && clipped.is_ok());
  auto err = [&](const QuantizedLinear& q) {
    const auto d = dequantize(q);
    double e = 0;
    for (size_t i = 0; i < w.size(); ++i) e += (d[i] - w[i]) * (d[i] - w[i]);
    return e;
  };
  EXPECT_LT(err(*clipped), err(*plain));
}

TEST(GptqOptions, StaticGroupsNeedNoGIdx) {
  std::mt19937 rng(9);
  std::normal_distribution<float> nd(0.f, 0.1f);
  const int64_t rows = 8, cols = 64;
  std::vector<float> w(size_t(rows * cols)), x(size_t(256 * cols));
  for (auto& v : w) v = nd(rng);
  for (auto& v : x) v = nd(rng);
  std::vector<double> h(size_t(cols * cols), 0.0);
  for (int64_t n = 0; n < 256; ++n)
    for (int64_t i = 0; i < cols; ++i)
      for (int64_t j = 0; j < cols; ++j)
        h[size_t(i * cols + j)] += double(x[size_t(n * cols + i)]) * x[size_t(n * cols + j)] * (1 + (i % 5 == 0) * 9.0);
  ThreadPool pool(1);
  ExecContext ctx(pool, CpuFeatures::detect());
  GptqOptions o;
  o.spec = QuantSpec{4, 32, false};
  o.act_order = true;
  auto dyn = gptq_quantize_linear(ctx, w.data(), rows, cols, h, o);
  o.static_groups = true;
  auto stat = gptq_quantize_linear(ctx, w.data(), rows, cols, h, o);
  ASSERT_TRUE(dyn.is_ok() && stat.is_ok());
  EXPECT_FALSE(dyn->g_idx.empty());
  EXPECT_TRUE(stat->g_idx.empty());  // groups in column order: packable by every layout
  EXPECT_EQ(stat->n_groups(), 2);
}

// SmoothQuant before rounding: the smoothed weights and norms compute the same function as the original
// model (every fold is exact: norms for q/k/v and gate/up, v_proj rows for o_proj, up_proj rows for down).
TEST(SmoothQuantFold, SmoothedModelMatchesTheOriginal) {
  auto base = Model::load(test::tiny_arch_dir("llama")).value();
  ThreadPool pool(2);
  ExecContext ctx(pool, CpuFeatures::detect());
  std::vector<std::vector<int32_t>> windows(2);
  std::mt19937 rng(5);
  for (auto& win : windows)
    for (int i = 0; i < 48; ++i) win.push_back(int32_t(rng() % 1000));
  auto stats = calibrate(*base, ctx, windows, CalibrationOptions{});
  ASSERT_TRUE(stats.is_ok()) << stats.status().message();

  TransformerWeights w = base->weights();
  auto storage = std::make_shared<std::vector<std::vector<float>>>();
  bool v_changed = false;
  for (size_t l = 0; l < w.layers.size(); ++l) {
    SmoothQuantOptions o;
    auto sl = smooth_layer(*base, *stats, int(l), o);
    ASSERT_TRUE(sl.is_ok()) << sl.status().message();
    const auto v0 = weight_to_f32(base->weights().layers[l].attn.v).value();
    v_changed |= rel_err(v0, sl->w[size_t(LinearKind::kV)]) > 1e-2;
    for (LinearKind k : kAllLinears) {
      storage->push_back(sl->w[size_t(k)]);
      WeightMatrix& m = linear_weight(w.layers[l], k);
      m.data = storage->back().data(), m.dtype = DType::F32;
    }
    w.layers[l].attn_norm.weight = sl->input_norm;
    w.layers[l].ffn_norm.weight = sl->post_attn_norm;
  }
  EXPECT_TRUE(v_changed) << "o_proj's smoothing did not reach v_proj";
  auto smoothed = Model::load(test::tiny_arch_dir("llama")).value();
  smoothed->replace_weights(std::move(w), storage);
  const std::vector<int32_t> ids = {5, 17, 300, 2, 999, 64, 8};
  const auto a = test::all_logits(*base, ctx, ids), b = test::all_logits(*smoothed, ctx, ids);
  EXPECT_LT(rel_err(a, b), 1e-4);
}

}  // namespace
}  // namespace tern
