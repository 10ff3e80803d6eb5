// Whole-model pruning on the tiny checkpoints: the exact sparsity of every linear, the source model
// left alone, SparseGPT's model output closer to the base than magnitude pruning's; structured
// pruning writes a smaller checkpoint that computes exactly what the base model computes with the
// removed heads / channels silenced (their o_proj / down_proj columns zeroed), with a consistent config.
#include <fmt/format.h>
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <random>

#include "compress/model_linears.h"
#include "compress/prune_model.h"
#include "compress/prune_structured.h"
#include "compress/prune_writer.h"
#include "core/cpu_features.h"
#include "core/mapped_file.h"
#include "core/thread_pool.h"
#include "kv/sequence_kv_cache.h"
#include "model/decoder.h"
#include "test_support.h"

namespace tern {
namespace {

class PruneModelTest : public ::testing::Test {
 protected:
  PruneModelTest() : pool_(2), ctx_(pool_, CpuFeatures::detect()) {}

  std::unique_ptr<Model> load(const std::string& dir) {
    auto m = Model::load(dir);
    EXPECT_TRUE(m.is_ok()) << m.status().message();
    return m.is_ok() ? std::move(m).value() : nullptr;
  }
  // Random token windows inside the vocabulary.
  std::vector<std::vector<int32_t>> windows(const Model& m, int n, int len) {
    std::mt19937 rng(7);
    std::uniform_int_distribution<int32_t> id(2, int32_t(m.config().vocab_size) - 1);
    std::vector<std::vector<int32_t>> w(static_cast<size_t>(n));
    for (auto& win : w)
      for (int i = 0; i < len; ++i) win.push_back(id(rng));
    return w;
  }
  // Logits of every position of `ids`: [n, vocab].
  std::vector<float> logits(const Model& m, const std::vector<int32_t>& ids) {
    const ModelConfig& c = m.config();
    Decoder dec(m, 512);
    SequenceKvCache kv(c, int64_t(ids.size()));
    const int64_t n = int64_t(ids.size());
    std::vector<float> h(size_t(n * c.hidden_size)), out(size_t(n * c.vocab_size));
    EXPECT_TRUE(dec.forward(ctx_, kv, ids.data(), n, n, h.data()).is_ok());
    dec.logits(ctx_, h.data(), n, out.data());
    return out;
  }
  static double mse(const std::vector<float>& a, const std::vector<float>& b) {
    double s = 0;
    for (size_t i = 0; i < a.size(); ++i) s += double(a[i] - b[i]) * (a[i] - b[i]);
    return s / double(a.size());
  }

  ThreadPool pool_;
  ExecContext ctx_;
};

TEST_F(PruneModelTest, EveryMethodPrunesEachRowExactlyAndLeavesTheSourceAlone) {
  auto m = load(test::tiny_arch_dir("llama"));
  ASSERT_TRUE(m);
  const auto win = windows(*m, 4, 64);
  const std::vector<float> base = logits(*m, win[0]);
  std::map<PruneMethod, double> err;
  for (PruneMethod method : {PruneMethod::kMagnitude, PruneMethod::kWanda, PruneMethod::kSparseGpt}) {
    PruneOptions o;
    o.method = method;
    o.spec.sparsity = 0.5;
    int64_t last = 0;
    auto pm = prune_model(*m, ctx_, win, o, [&](int64_t d, int64_t t) {
      EXPECT_EQ(t, 2);
      last = d;
    });
    ASSERT_TRUE(pm.is_ok()) << pm.status().message();
    EXPECT_EQ(last, 2);
    EXPECT_EQ(pm->modules.size(), size_t(14));
    EXPECT_DOUBLE_EQ(pm->sparsity(), 0.5) << prune_method_name(method);
    for (const auto& [name, mod] : pm->modules)
      for (int64_t r = 0; r < mod.rows; ++r) {
        int64_t z = 0;
        for (int64_t c = 0; c < mod.cols; ++c) z += mod.w[size_t(r * mod.cols + c)] == 0.0f;
        ASSERT_EQ(z, mod.cols / 2) << name << " row " << r;
      }
    EXPECT_EQ(logits(*m, win[0]), base) << "the source model is not changed";
    auto pruned = load(test::tiny_arch_dir("llama"));
    ASSERT_TRUE(apply_pruned(*pruned, *pm).is_ok());
    err[method] = mse(logits(*pruned, win[0]), base);
  }
  EXPECT_LT(err[PruneMethod::kSparseGpt], err[PruneMethod::kMagnitude]);
}

TEST_F(PruneModelTest, OwlRiaAndTheLmHead) {
  auto m = load(test::tiny_arch_dir("llama"));
  ASSERT_TRUE(m);
  const auto win = windows(*m, 4, 64);
  PruneOptions o;
  o.method = PruneMethod::kWanda;
  o.spec.sparsity = 0.5;
  o.owl = true;
  auto pm = prune_model(*m, ctx_, win, o);
  ASSERT_TRUE(pm.is_ok()) << pm.status().message();
  ASSERT_EQ(pm->layer_sparsity.size(), size_t(2));
  EXPECT_NEAR((pm->layer_sparsity[0] + pm->layer_sparsity[1]) / 2, 0.5, 1e-12);
  EXPECT_NEAR(pm->sparsity(), 0.5, 0.01) << "two layers of the same size: the mean sparsity";
  o.method = PruneMethod::kMagnitude;
  EXPECT_FALSE(prune_model(*m, ctx_, win, o).is_ok()) << "--owl with magnitude";
  o.owl = false;
  o.method = PruneMethod::kRia;
  o.spec = *parse_nm_pattern("2:4");
  pm = prune_model(*m, ctx_, win, o);
  ASSERT_TRUE(pm.is_ok()) << pm.status().message();
  EXPECT_DOUBLE_EQ(pm->sparsity(), 0.5);
  // The LM head by magnitude: its own module, written untied (llama_tied ties it to the embedding).
  m = load(test::tiny_arch_dir("llama_tied"));
  ASSERT_TRUE(m);
  ASSERT_TRUE(m->config().tie_word_embeddings);
  o.method = PruneMethod::kMagnitude;
  o.spec = PruneSpec{};
  o.spec.group = PruneGroup::kLayer;
  o.lm_head = true;
  pm = prune_model(*m, ctx_, {}, o);
  ASSERT_TRUE(pm.is_ok()) << pm.status().message();
  ASSERT_TRUE(pm->modules.count("lm_head"));
  const PrunedModule& head = pm->modules.at("lm_head");
  int64_t z = 0;
  for (float v : head.w) z += v == 0.0f;
  EXPECT_EQ(z, int64_t(std::llround(0.5 * double(head.w.size()))));
  test::TempDir out;
  ASSERT_TRUE(write_pruned_checkpoint(*m, *pm, out.path()).is_ok());
  auto back = load(out.path());
  ASSERT_TRUE(back);
  EXPECT_FALSE(back->config().tie_word_embeddings);
  auto head_back = weight_to_f32(back->weights().lm_head);
  ASSERT_TRUE(head_back.is_ok());
  EXPECT_EQ(*head_back, head.w) << "f32 checkpoint: the pruned head as written";
  auto embed = weight_to_f32(back->weights().embed);
  auto embed_in = weight_to_f32(m->weights().embed);
  ASSERT_TRUE(embed.is_ok() && embed_in.is_ok());
  EXPECT_EQ(*embed, *embed_in) << "the embedding stays dense";
}

TEST_F(PruneModelTest, NmPatternThatDoesNotDivideTheInputsIsRefusedUpFront) {
  auto m = load(test::tiny_arch_dir("llama"));  // hidden 64, intermediate 160
  ASSERT_TRUE(m);
  PruneOptions o;
  o.spec.n = 4, o.spec.m = 128;  // divides neither 64 nor 160
  auto pm = prune_model(*m, ctx_, {}, o);
  ASSERT_FALSE(pm.is_ok());
  EXPECT_NE(pm.status().message().find("model.layers.0.self_attn.q_proj"), std::string::npos) << pm.status().message();
  o.method = PruneMethod::kWanda;
  o.spec = PruneSpec{};
  EXPECT_FALSE(prune_model(*m, ctx_, {}, o).is_ok()) << "wanda without calibration windows";
}

TEST_F(PruneModelTest, WrittenCheckpointHoldsTheZerosAndLoads) {
  auto m = load(test::tiny_arch_dir("llama"));
  ASSERT_TRUE(m);
  PruneOptions o;
  o.spec = *parse_nm_pattern("2:4");
  auto pm = prune_model(*m, ctx_, {}, o);
  ASSERT_TRUE(pm.is_ok());
  test::TempDir out;
  ASSERT_TRUE(write_pruned_checkpoint(*m, *pm, out.path()).is_ok());
  auto back = load(out.path());
  ASSERT_TRUE(back);
  auto mem = load(test::tiny_arch_dir("llama"));
  ASSERT_TRUE(apply_pruned(*mem, *pm).is_ok());
  const auto win = windows(*m, 1, 16);
  EXPECT_LT(mse(logits(*back, win[0]), logits(*mem, win[0])), 1e-10) << "f32 checkpoint: the same weights";
}

// Zeroes, in a copy of `m`, the o_proj columns of the removed heads and the down_proj columns of
// the removed channels: what the structured checkpoint must compute.
Status silence_removed(Model& m, const StructuredPlan& p) {
  const ModelConfig& c = m.config();
  PrunedModel pm;
  const int rep = c.n_heads / c.n_kv_heads;
  for (int l = 0; l < c.n_layers; ++l) {
    const DecoderLayerWeights& lw = m.weights().layers[size_t(l)];
    for (bool attn : {true, false}) {
      const WeightMatrix& w = attn ? lw.attn.o : lw.mlp.down;
      TERN_ASSIGN_OR_RETURN(std::vector<float> f, weight_to_f32(w));
      for (int64_t j = 0; j < w.cols; ++j) {
        const bool kept = attn ? p.kv_remove == 0 || std::count(p.kv_kept[size_t(l)].begin(), p.kv_kept[size_t(l)].end(),
                                                                int(j / c.head_dim / rep))
                               : p.channels_keep == 0 || std::count(p.channels_kept[size_t(l)].begin(),
                                                                    p.channels_kept[size_t(l)].end(), j);
        if (!kept)
          for (int64_t r = 0; r < w.rows; ++r) f[size_t(r * w.cols + j)] = 0.0f;
      }
      const std::string name = fmt::format("model.layers.{}.{}", l, attn ? "self_attn.o_proj" : "mlp.down_proj");
      pm.modules[name] = PrunedModule{w.rows, w.cols, false, std::move(f)};
    }
  }
  return apply_pruned(m, pm);
}

TEST_F(PruneModelTest, StructuredWidthComputesTheBaseWithTheRemovedPartsSilenced) {
  for (const char* arch : {"llama", "qwen2", "qwen3"}) {  // qwen2: q/k/v biases; qwen3: q/k norms
    auto m = load(test::tiny_arch_dir(arch));
    ASSERT_TRUE(m);
    StructuredOptions so;
    so.targets = kPruneHeads | kPruneChannels;
    so.ratio = 0.5;
    auto plan = plan_structured_shape(*m, so);
    ASSERT_TRUE(plan.is_ok()) << arch << ": " << plan.status().message();
    ASSERT_TRUE(score_structured(*m, ctx_, windows(*m, 2, 48), *plan).is_ok());
    test::TempDir out;
    ASSERT_TRUE(write_structured_checkpoint(*m, *plan, out.path()).is_ok()) << arch;
    const auto cfg = nlohmann::json::parse(*read_text_file(out.file("config.json")));
    const ModelConfig& c = m->config();
    EXPECT_EQ(cfg["num_key_value_heads"], c.n_kv_heads / 2) << arch;
    EXPECT_EQ(cfg["num_attention_heads"], c.n_heads / 2) << arch;
    EXPECT_EQ(cfg["head_dim"], c.head_dim) << arch;
    EXPECT_EQ(cfg["intermediate_size"], plan->channels_keep) << arch;
    auto small = load(out.path());
    ASSERT_TRUE(small) << arch;
    EXPECT_EQ(small->config().n_heads, c.n_heads / 2);
    ASSERT_TRUE(silence_removed(*m, *plan).is_ok());
    const auto ids = windows(*m, 1, 24)[0];
    const std::vector<float> want = logits(*m, ids), got = logits(*small, ids);
    double scale = 0;
    for (float v : want) scale = std::max(scale, double(std::fabs(v)));
    EXPECT_LT(std::sqrt(mse(got, want)), 1e-5 * std::max(1.0, scale)) << arch;
  }
}

TEST_F(PruneModelTest, StructuredLayersRemovesTheLeastInfluentialAndRenumbers) {
  auto m = load(test::tiny_arch_dir("qwen3"));
  ASSERT_TRUE(m);
  StructuredOptions so;
  so.targets = kPruneLayers;
  so.ratio = 0.5;
  auto plan = plan_structured_shape(*m, so);
  ASSERT_TRUE(plan.is_ok()) << plan.status().message();
  ASSERT_TRUE(score_structured(*m, ctx_, windows(*m, 2, 32), *plan).is_ok());
  ASSERT_EQ(plan->layer_scores.size(), size_t(m->config().n_layers));
  for (double s : plan->layer_scores) EXPECT_TRUE(s >= 0.0 && s <= 2.0) << s;
  const int kept = plan->layers_kept[0];
  EXPECT_GE(plan->layer_scores[size_t(kept)], plan->layer_scores[size_t(1 - kept)]);
  test::TempDir out;
  ASSERT_TRUE(write_structured_checkpoint(*m, *plan, out.path()).is_ok());
  const auto cfg = nlohmann::json::parse(*read_text_file(out.file("config.json")));
  EXPECT_EQ(cfg["num_hidden_layers"], m->config().n_layers - 1);
  auto small = load(out.path());
  ASSERT_TRUE(small);
  EXPECT_NE(small->store().find("model.layers.0.self_attn.q_proj.weight"), nullptr);
  EXPECT_EQ(small->store().find(fmt::format("model.layers.{}.self_attn.q_proj.weight", m->config().n_layers - 1)), nullptr);
  EXPECT_FALSE(logits(*small, windows(*m, 1, 8)[0]).empty());
}

TEST_F(PruneModelTest, StructuredRefusesWhatItCannotDo) {
  auto m = load(test::tiny_arch_dir("llama"));  // 2 KV groups, 2 layers
  ASSERT_TRUE(m);
  StructuredOptions so;
  so.targets = kPruneHeads;
  so.ratio = 0.1;  // removes round(0.2) = 0 groups
  auto p = plan_structured_shape(*m, so);
  ASSERT_FALSE(p.is_ok());
  EXPECT_NE(p.status().message().find("num_key_value_heads"), std::string::npos) << p.status().message();
  so.ratio = 1.0;
  EXPECT_FALSE(plan_structured_shape(*m, so).is_ok());
  EXPECT_FALSE(parse_structured_targets("heads,layers").is_ok());
  EXPECT_FALSE(parse_structured_targets("neurons").is_ok());
  EXPECT_EQ(*parse_structured_targets("channels,heads"), unsigned(kPruneHeads | kPruneChannels));
  auto moe = load(test::tiny_arch_dir("mixtral"));
  ASSERT_TRUE(moe);
  so.ratio = 0.5;
  auto pm = plan_structured_shape(*moe, so);
  ASSERT_FALSE(pm.is_ok());
  EXPECT_NE(pm.status().message().find("MixtralForCausalLM"), std::string::npos) << pm.status().message();
}

}  // namespace
}  // namespace tern
