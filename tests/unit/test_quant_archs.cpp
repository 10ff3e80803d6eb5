// tern quantize's methods on every tiny architecture (../shared/models/tiny-archs: dense, fused
// checkpoint tensors, GPT-2 Conv1D + LayerNorm, Gemma's 1 + w norms, MLA, mixtures of experts with
// and without a shared expert): RTN int8, RTN int4-group, AWQ int4, GPTQ int4 → the checkpoint
// writer → Model::load. The loaded checkpoint must compute what apply_dequantized computes in memory
// (the same rounded weights, through the packed kernels), every linear (each expert's included) must
// come back quantized, and the logits must stay near the fp32 model's. The tiny archs have no
// tokenizer: calibration and evaluation feed the bytes of docs-val.txt as token ids.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>

#include "../model_test_util.h"
#include "../test_support.h"
#include "compress/awq.h"
#include "compress/calibration.h"
#include "compress/checkpoint_writer.h"
#include "compress/gptq.h"
#include "compress/linear_sites.h"
#include "compress/model_linears.h"
#include "core/cpu_features.h"
#include "core/mapped_file.h"
#include "core/thread_pool.h"
#include "ops/matmul.h"

namespace tern {
namespace {

enum class Method { kRtn8, kRtn4, kAwq4, kGptq4 };
const char* method_name(Method m) {
  switch (m) {
    case Method::kRtn8: return "rtn-int8";
    case Method::kRtn4: return "rtn-int4";
    case Method::kAwq4: return "awq-int4";
    case Method::kGptq4: return "gptq-int4";
  }
  return "?";
}

QuantConfig layout_of(Method m) {
  QuantConfig c;
  switch (m) {
    case Method::kRtn8:
      c.method = QuantMethod::CompressedTensors, c.bits = 8, c.group = 0, c.symmetric = true;
      c.ct_format = "pack-quantized", c.ignore = {"lm_head"};
      break;
    case Method::kRtn4: c.method = QuantMethod::Gptq, c.bits = 4, c.group = 32, c.symmetric = true; break;
    case Method::kAwq4: c.method = QuantMethod::Awq, c.bits = 4, c.group = 32, c.symmetric = false; break;
    case Method::kGptq4: c.method = QuantMethod::Gptq, c.bits = 4, c.group = 32, c.symmetric = false; break;
  }
  return c;
}

std::vector<int32_t> byte_ids(size_t from, size_t n) {
  static const std::string text = read_text_file(test::shared_dir() + "/data/docs-val.txt").value();
  std::vector<int32_t> ids;
  for (size_t i = from; i < from + n && i < text.size(); ++i) ids.push_back(int32_t(static_cast<unsigned char>(text[i])));
  return ids;
}

double rel_rms(const std::vector<float>& a, const std::vector<float>& b) {
  double num = 0, den = 0;
  for (size_t i = 0; i < a.size(); ++i) num += double(a[i] - b[i]) * double(a[i] - b[i]), den += double(a[i]) * a[i];
  return std::sqrt(num / den);
}

// Median over positions of the relative RMS error of that position's logits.
double median_rel(const std::vector<float>& a, const std::vector<float>& b, int64_t vocab) {
  std::vector<double> e;
  for (size_t p = 0; p * size_t(vocab) < a.size(); ++p) {
    const std::vector<float> ra(a.begin() + p * vocab, a.begin() + (p + 1) * vocab);
    const std::vector<float> rb(b.begin() + p * vocab, b.begin() + (p + 1) * vocab);
    e.push_back(rel_rms(ra, rb));
  }
  std::nth_element(e.begin(), e.begin() + e.size() / 2, e.end());
  return e[e.size() / 2];
}

// A loaded (kernel-packed) matrix [rows, cols] read back as f32: identity [cols, cols] · Wᵀ. The int4
// kernels round x to int8 per group: a one-hot row rounds exactly.
std::vector<float> read_back(const WeightMatrix& w) {
  ThreadPool pool(1);
  ExecContext ctx(pool, CpuFeatures::detect());
  std::vector<float> eye(size_t(w.cols * w.cols), 0.f), yt(size_t(w.cols * w.rows)), out(yt.size());
  for (int64_t i = 0; i < w.cols; ++i) eye[size_t(i * w.cols + i)] = 1.f;
  matmul(ctx, eye.data(), w.cols, w, yt.data());
  for (int64_t c = 0; c < w.cols; ++c)
    for (int64_t r = 0; r < w.rows; ++r) out[size_t(r * w.cols + c)] = yt[size_t(c * w.rows + r)];
  return out;
}

class QuantArchs : public ::testing::TestWithParam<std::string> {
 protected:
  QuantArchs() : pool_(2), ctx_(pool_, CpuFeatures::detect()) {}

  std::unique_ptr<Model> load() { return Model::load(test::tiny_arch_dir(GetParam())).value(); }

  CalibrationStats calibrate_all(const Model& m) {
    std::vector<std::vector<int32_t>> windows;
    for (int w = 0; w < 4; ++w) windows.push_back(byte_ids(size_t(w) * 64, 64));
    CalibrationOptions o;
    o.hessian = true, o.sample_rows = 128;
    return calibrate(m, ctx_, windows, o).value();
  }

  Result<QuantizedModel> run(Method m, const Model& base, const CalibrationStats& st) {
    const QuantConfig c = layout_of(m);
    const QuantSpec spec{c.bits, c.group, c.symmetric};
    switch (m) {
      case Method::kRtn8:
      case Method::kRtn4: return quantize_model_rtn(base, spec);
      case Method::kAwq4: {
        AwqOptions o;
        o.spec = spec;
        return quantize_model_awq(base, ctx_, st, o);
      }
      case Method::kGptq4: {
        GptqOptions o;
        o.spec = spec;
        return quantize_model_gptq(base, ctx_, st, o);
      }
    }
    return Status::error("?");
  }

  ThreadPool pool_;
  ExecContext ctx_;
};

TEST_P(QuantArchs, EveryMethodWritesLoadsAndComputesWhatItRounded) {
  auto base = load();
  const CalibrationStats stats = calibrate_all(*base);
  auto list = model_linears(*base);
  ASSERT_TRUE(list.is_ok()) << list.status().message();
  const std::vector<int32_t> ids = byte_ids(4000, 40);
  const auto ref = test::all_logits(*base, ctx_, ids);
  ASSERT_FALSE(ref.empty());
  for (Method m : {Method::kRtn8, Method::kRtn4, Method::kAwq4, Method::kGptq4}) {
    SCOPED_TRACE(std::string(GetParam()) + " " + method_name(m));
    auto qm = run(m, *base, stats);
    ASSERT_TRUE(qm.is_ok()) << qm.status().message();
    for (const auto& mod : list->modules) EXPECT_EQ(qm->linears.count(mod.name), 1u) << mod.name;
    EXPECT_EQ(qm->linears.size(), list->modules.size());

    auto deq = load();
    ASSERT_TRUE(apply_dequantized(*deq, *qm).is_ok());
    const auto in_memory = test::all_logits(*deq, ctx_, ids);

    test::TempDir out;
    const QuantConfig layout = layout_of(m);
    LinearQuantizer q = [&](const std::string& module, const float*, int64_t, int64_t) -> Result<QuantizedLinear> {
      auto it = qm->linears.find(module);
      if (it == qm->linears.end()) return Status::error(module + ": not quantized by the method");
      return it->second;
    };
    CheckpointWriteOptions wo;
    wo.out_dir = out.path();
    wo.vectors = &qm->vectors;
    Status s = write_quantized_checkpoint(*base, layout, q, wo);
    ASSERT_TRUE(s.is_ok()) << s.message();
    auto loaded = Model::load(out.path());
    ASSERT_TRUE(loaded.is_ok()) << loaded.status().message();
    // Every linear (fused parts, each expert, the shared expert) came back quantized.
    auto back = model_linears(**loaded);
    ASSERT_TRUE(back.is_ok());
    ASSERT_EQ(back->n_linears(), list->n_linears());
    for (const auto& l : back->layers)
      for (const auto& site : l.sites) EXPECT_NE(site.w->format, WeightFormat::Dense) << site.name;
    // The checkpoint holds exactly what the method rounded: each loaded matrix, read back through the
    // kernels (identity · Wᵀ), is the dequantized QuantizedLinear rows of its (fused) module (scales are
    // stored in 16 bits by the AutoGPTQ / AutoAWQ layouts, hence not bit-exact), and the folded norms and
    // rescaled routers came back as apply_dequantized set them.
    auto mem = model_linears(*deq).value();
    for (size_t l = 0; l < back->layers.size(); ++l) {
      for (const LinearSite& site : back->layers[l].sites) {
        const QuantizedLinear& ql = qm->linears.at(site.module);
        const auto want = dequantize(slice_rows(ql, site.row0, site.w->rows));
        EXPECT_LT(rel_rms(want, read_back(*site.w)), 2e-3) << site.name;
      }
      for (size_t g = 0; g < back->layers[l].groups.size(); ++g) {
        const InputGroup& a = back->layers[l].groups[g];
        const InputGroup& b = mem.layers[l].groups[g];
        if (a.norm_weight) EXPECT_EQ(*a.norm_weight, *b.norm_weight) << a.norm_weight_name;
        if (a.norm_bias) EXPECT_EQ(*a.norm_bias, *b.norm_bias) << a.norm_bias_name;
        for (size_t k = 0; k < a.dense_scaled.size(); ++k)
          EXPECT_EQ(weight_to_f32(*a.dense_scaled[k]).value(), weight_to_f32(*b.dense_scaled[k]).value());
      }
    }
    // Near the fp32 model (random Gaussian weights of width 64: int8 ~2%, int4 g32 ~35% of the logits),
    // position by position (the median: on a tiny random MoE one rounded weight can
    // flip a near-tie in the routing of a token, which moves that position's logits by far more than
    // rounding does anywhere else).
    const auto from_disk = test::all_logits(**loaded, ctx_, ids);
    ASSERT_EQ(from_disk.size(), ref.size());
    const int64_t vocab = base->config().vocab_size;
    EXPECT_LT(median_rel(ref, from_disk, vocab), m == Method::kRtn8 ? 0.04 : 0.5);
    EXPECT_LT(median_rel(in_memory, from_disk, vocab), m == Method::kRtn8 ? 0.01 : 0.04);
  }
}

// AutoAWQ's MoE recipe: every expert (and the shared expert) of a layer reads the one normed input,
// so they share ONE scale s folded into that norm; the router (kept dense) reads x / s too, so its
// columns are multiplied by s. int8 keeps rounding small, a fixed alpha keeps s away from 1.
TEST(QuantArchsAwq, ExpertsOfALayerShareOneScaleFoldedIntoTheNorm) {
  ThreadPool pool(2);
  ExecContext ctx(pool, CpuFeatures::detect());
  for (const char* arch : {"mixtral", "qwen2_moe", "deepseek_v3"}) {
    SCOPED_TRACE(arch);
    auto base = Model::load(test::tiny_arch_dir(arch)).value();
    std::vector<std::vector<int32_t>> windows = {byte_ids(0, 64), byte_ids(64, 64)};
    CalibrationOptions co;
    co.sample_rows = 128;
    const CalibrationStats stats = calibrate(*base, ctx, windows, co).value();
    AwqOptions o;
    o.spec = QuantSpec{8, 0, true};
    o.fixed_alpha = 0.5f;
    o.clip = false;
    auto qm = quantize_model_awq(*base, ctx, stats, o);
    ASSERT_TRUE(qm.is_ok()) << qm.status().message();
    const ModelLinears list = model_linears(*base).value();
    int moe_layers = 0;
    for (const LayerLinears& ll : list.layers) {
      for (const InputGroup& g : ll.groups) {
        if (!g.moe) continue;
        ++moe_layers;
        const std::vector<float>& folded = qm->vectors.at(g.norm_weight_name);
        std::vector<float> s(folded.size());
        float lo = INFINITY, hi = 0;
        for (size_t c = 0; c < s.size(); ++c) {
          s[c] = (*g.norm_weight)[c] / (folded[c] + g.norm_offset);
          lo = std::min(lo, s[c]), hi = std::max(hi, s[c]);
        }
        EXPECT_GT(hi / lo, 1.2f) << "the scale is (nearly) 1: the test would show nothing";
        // Every expert's and the shared expert's gate is W · diag(s) (up too, its rows then divided by
        // the expert's own down scale, so only gate is compared).
        size_t experts = 0, gates = 0;
        for (int i : g.sites) {
          const LinearSite& site = ll.sites[size_t(i)];
          experts += site.input.expert >= 0;
          if (site.w != &g.moe->shared.gate && (site.input.expert < 0 || site.w != &g.moe->experts[size_t(site.input.expert)].gate))
            continue;
          ++gates;
          std::vector<float> ws = weight_to_f32(*site.w).value();
          for (size_t j = 0; j < ws.size(); ++j) ws[j] *= s[j % s.size()];
          EXPECT_LT(rel_rms(ws, dequantize(qm->linears.at(site.module))), 0.02) << site.name;
        }
        EXPECT_EQ(experts, 2 * g.moe->experts.size());
        EXPECT_EQ(gates, g.moe->experts.size() + (g.moe->shared.present() ? 1 : 0));
        for (size_t k = 0; k < g.dense_scaled.size(); ++k) {  // router (and shared_expert_gate): columns · s
          std::vector<float> r = weight_to_f32(*g.dense_scaled[k]).value();
          for (size_t j = 0; j < r.size(); ++j) r[j] *= s[j % s.size()];
          EXPECT_LT(rel_rms(r, qm->vectors.at(g.dense_scaled_names[k])), 1e-6) << g.dense_scaled_names[k];
        }
      }
    }
    EXPECT_GT(moe_layers, 0);
  }
}

// An expert no calibration row reached has no Hessian and no sample: GPTQ and AWQ still quantize it
// (round to nearest), so no expert is left dense.
TEST(QuantArchsGptq, ExpertsWithoutCalibrationRowsAreRoundedToNearest) {
  ThreadPool pool(2);
  ExecContext ctx(pool, CpuFeatures::detect());
  auto base = Model::load(test::tiny_arch_dir("mixtral")).value();
  CalibrationOptions co;
  co.hessian = true, co.sample_rows = 16;
  // One token: top-2 of 4 experts per layer see it, two see nothing.
  const CalibrationStats stats = calibrate(*base, ctx, {{int32_t(7)}}, co).value();
  const QuantSpec spec{4, 32, true};
  GptqOptions go;
  go.spec = spec;
  auto gq = quantize_model_gptq(*base, ctx, stats, go);
  ASSERT_TRUE(gq.is_ok()) << gq.status().message();
  AwqOptions ao;
  ao.spec = spec;
  auto aq = quantize_model_awq(*base, ctx, stats, ao);
  ASSERT_TRUE(aq.is_ok()) << aq.status().message();
  const ModelLinears list = model_linears(*base).value();
  int unreached = 0;
  for (const LayerLinears& ll : list.layers) {
    for (const LinearSite& site : ll.sites) {
      ASSERT_EQ(gq->linears.count(site.module), 1u) << site.name;
      ASSERT_EQ(aq->linears.count(site.module), 1u) << site.name;
      if (site.input.expert < 0 || stats.at(site.input).rows > 0) continue;
      ++unreached;
      const std::vector<float> w = weight_to_f32(*site.w).value();
      EXPECT_EQ(gq->linears.at(site.module).q, quantize_rtn(w.data(), site.w->rows, site.w->cols, spec).value().q);
    }
  }
  EXPECT_EQ(unreached, 2 * 2 * 3);  // 2 layers × 2 experts × gate, up, down
}

// The entry points `tern quantize` calls: on a MoE model they calibrate and quantize one layer per
// pass (calibrate_by_layer), which must give what one pass over all layers gives; sequential GPTQ
// (per layer, per input: MLA's q_b input is a stage of its own) and AWQ + GPTQ rounding run on MoE and
// MLA layers too.
TEST(QuantArchsEntryPoints, MoeAndMlaThroughEveryRecipePart) {
  ThreadPool pool(2);
  ExecContext ctx(pool, CpuFeatures::detect());
  for (const char* arch : {"qwen2_moe", "deepseek_v3"}) {
    SCOPED_TRACE(arch);
    auto base = Model::load(test::tiny_arch_dir(arch)).value();
    CalibData calib;
    calib.tokens = byte_ids(0, 256);
    calib.seq_len = 64, calib.max_windows = 4;
    const QuantSpec spec{4, 32, false};
    const size_t n_modules = model_linears(*base).value().modules.size();
    const std::vector<int32_t> ids = byte_ids(4000, 40);
    const auto ref = test::all_logits(*base, ctx, ids);
    auto near_base = [&](const QuantizedModel& qm) {
      auto m = Model::load(test::tiny_arch_dir(arch)).value();
      EXPECT_TRUE(apply_dequantized(*m, qm).is_ok());
      return median_rel(ref, test::all_logits(*m, ctx, ids), base->config().vocab_size);
    };
    MethodOptions mo;
    auto layerwise = gptq_quantize(ctx, *base, calib, spec, mo);
    ASSERT_TRUE(layerwise.is_ok()) << layerwise.status().message();
    CalibrationOptions co;
    co.hessian = true;
    const auto windows = calibration_windows(calib.tokens, 64, 4).value();
    GptqOptions go;
    go.spec = spec;
    auto one_pass = quantize_model_gptq(*base, ctx, calibrate(*base, ctx, windows, co).value(), go);
    ASSERT_TRUE(one_pass.is_ok());
    ASSERT_EQ(layerwise->linears.size(), n_modules);
    for (const auto& [name, ql] : one_pass->linears) EXPECT_EQ(layerwise->linears.at(name).q, ql.q) << name;
    for (int seq : {1, 2}) {
      mo.sequential = seq;
      auto q = gptq_quantize(ctx, *base, calib, spec, mo);
      ASSERT_TRUE(q.is_ok()) << q.status().message();
      EXPECT_EQ(q->linears.size(), n_modules);
      EXPECT_LT(near_base(*q), 0.5) << "sequential " << seq;
    }
    mo = MethodOptions{};
    mo.awq_gptq = true;
    auto awq = awq_quantize(ctx, *base, calib, spec, mo);
    ASSERT_TRUE(awq.is_ok()) << awq.status().message();
    EXPECT_EQ(awq->linears.size(), n_modules);
    EXPECT_LT(near_base(*awq), 0.5);
  }
}

INSTANTIATE_TEST_SUITE_P(TinyArchs, QuantArchs,
                         ::testing::Values("llama", "llama_tied", "mistral_swa", "qwen2", "qwen3", "gpt2", "gemma2",
                                           "phi3", "glm4", "deepseek_v3", "mixtral", "qwen2_moe", "qwen3_moe"));

}  // namespace
}  // namespace tern
