// Mixtures of experts in the planner, from the published config.json files (tests/data/plan_configs/):
// parameters total and active per token, against the arithmetic written out and the published
// figures; the memory holds every expert while a decode token streams only the ones it visits.
#include <gtest/gtest.h>

#include "formats/model_config.h"
#include "plan/planner.h"
#include "plan_test_util.h"
#include "test_support.h"

namespace tern::plan {
namespace {

// Within `rel` of a published figure (given in billions).
void expect_published(int64_t got, double billions, double rel, const char* what) {
  EXPECT_NEAR(double(got) / 1e9, billions, billions * rel) << what << ": " << double(got) / 1e9 << " B";
}

TEST(PlanMoe, Qwen3_30B_A3B_30_5BTotal_3_3BActive) {
  const ModelShape s = shape("qwen3-30b-a3b");
  ASSERT_TRUE(s.is_moe());
  EXPECT_EQ(s.n_experts, 128);
  EXPECT_EQ(s.experts_per_token, 8);
  EXPECT_EQ(s.moe_layers(), 48);
  // Per layer: attention q 4096·2048 + k, v 512·2048 each + o 2048·4096 + q/k norms 2·128;
  // 128 experts of 3·2048·768; router 128·2048; two norms of 2048. Plus the final norm and the
  // untied embedding and head, 151936·2048 each.
  const int64_t attention = 4096LL * 2048 + 2 * 512LL * 2048 + 2048LL * 4096 + 2 * 128;
  const int64_t expert = 3LL * 2048 * 768;
  const int64_t layer = attention + 128 * expert + 128LL * 2048 + 2 * 2048;
  const int64_t table = 151936LL * 2048;
  const int64_t total = 48 * layer + 2048 + 2 * table;
  const ParamCounts c = count_params(s);
  EXPECT_EQ(c.total(), total);                        // 30.532 B
  EXPECT_EQ(c.active, total - 48 * 120 * expert);     // 3.353 B: 8 of 128 experts per layer
  // Qwen's model card: 30.5 B total, 29.9 B without the embeddings, 3.3 B activated. The last is
  // given to two digits (3.353 truncated), so it holds to 2%, the others to 1%.
  expect_published(c.total(), 30.5, 0.01, "total");
  expect_published(c.total() - c.embedding - c.lm_head, 29.9, 0.01, "non-embedding");
  expect_published(c.active, 3.3, 0.02, "active");
}

TEST(PlanMoe, PublishedTotalsAndActiveCounts) {
  // Mixtral-8x7B: 46.7 B total, 12.9 B active (Mistral's announcement); DeepSeek-V3: 671 B total
  // (without its 14 B multi-token-prediction module), 37 B activated (its report: 37.55 here, so 2%).
  const ParamCounts mixtral = count_params(shape("mixtral-8x7b"));
  expect_published(mixtral.total(), 46.7, 0.01, "Mixtral total");
  expect_published(mixtral.active, 12.9, 0.01, "Mixtral active");
  const ParamCounts ds = count_params(shape("deepseek-v3"));
  expect_published(ds.total(), 671, 0.01, "DeepSeek-V3 total");
  expect_published(ds.active, 37, 0.02, "DeepSeek-V3 active");
}

// Memory holds every expert; one decode token streams attention, routers, its top-k experts, the
// shared experts, norms and the LM head: in bf16 exactly 2 bytes × (active − the embedding table,
// which is gathered a row at a time, not streamed).
TEST(PlanMoe, MemoryHoldsAllExpertsDecodeStreamsTheActiveOnes) {
  const WeightPrecision bf16 = *parse_weight_precision("bf16");
  for (const char* name : {"mixtral-8x7b", "qwen3-30b-a3b", "deepseek-v3"}) {
    SCOPED_TRACE(name);
    const ModelShape s = shape(name);
    const ParamCounts c = count_params(s);
    const WeightBytes b = weight_bytes(s, bf16);
    EXPECT_DOUBLE_EQ(b.total, 2.0 * double(c.total()));
    EXPECT_DOUBLE_EQ(b.streamed(1, s.n_experts, s.experts_per_token), 2.0 * double(c.active - c.embedding));
    // A step of many tokens visits (nearly) every expert: then it streams everything but the table.
    EXPECT_NEAR(b.streamed(100000, s.n_experts, s.experts_per_token), 2.0 * double(c.total() - c.embedding),
                1e-6 * b.total);
  }
}

// The plan's memory is the whole model; its batch-1 decode speed follows the active bytes: on one
// device with room for it, Qwen3-30B-A3B decodes ~10× faster than a dense model of its size would.
TEST(PlanMoe, DecodeSpeedFollowsTheActiveBytes) {
  auto catalog = Catalog::shipped();
  ASSERT_TRUE(catalog.is_ok()) << catalog.status().message();
  const Device* h100 = catalog->find("h100-sxm");
  ASSERT_NE(h100, nullptr);
  PlanRequest r;
  r.model = shape("qwen3-30b-a3b");
  r.weights = *parse_weight_precision("bf16");
  r.kv = *parse_kv_precision("bf16");
  r.device = *h100;
  r.context = 4096;
  r.concurrency = 1;
  auto p = make_plan(r);
  ASSERT_TRUE(p.is_ok()) << p.status().message();
  ASSERT_TRUE(p->fits) << p->reason;
  EXPECT_EQ(p->tp * p->pp, 1);
  EXPECT_NEAR(p->memory.weights, 2.0 * double(p->params.total()), 1.0);  // every expert resident
  // The step's weight stream (the memory-bound part, without fixed costs and attention at 1 token).
  const double bw = h100->bandwidth_gbs * 1e9 * h100->decode_efficiency;
  const DecodeStep one = decode_step(r, p->bytes, p->kv_bytes_per_token, 1, 1, 1, 0);
  EXPECT_TRUE(one.memory_bound);
  const double stream_s = one.seconds - one.fixed_seconds;
  EXPECT_NEAR(stream_s, 2.0 * double(p->params.active - p->params.embedding) / bw, 1e-9);
  // The same shape read whole (all experts, as one dense MLP per layer would be) takes 9.9× longer
  // (30.22 B vs 3.04 B streamed parameters).
  const double dense_s = 2.0 * double(p->params.total() - p->params.embedding) / bw;
  EXPECT_NEAR(dense_s / stream_s, 9.93, 0.01);
}

// DeepSeek-V3's multi-head latent attention caches kv_lora_rank + qk_rope_head_dim values per layer
// and token (512 + 64 = 576 for all 128 heads), not 2 × heads × head_dim.
TEST(PlanMoe, DeepSeekV3KvPerTokenIsTheLatent) {
  const ModelShape s = shape("deepseek-v3");
  ASSERT_TRUE(s.is_mla());
  EXPECT_EQ(s.kv_elems_per_token_layer(), 512 + 64);
  PlanRequest r;
  r.model = s;
  r.weights = *parse_weight_precision("fp8");
  r.kv = *parse_kv_precision("bf16");
  auto catalog = Catalog::shipped();
  ASSERT_TRUE(catalog.is_ok());
  r.device = *catalog->find("h200");
  r.context = 4096;
  auto p = make_plan(r);
  ASSERT_TRUE(p.is_ok()) << p.status().message();
  EXPECT_EQ(p->kv_bytes_per_token, 576.0 * 61 * 2);
}

// The planner reads the MoE fields with the engine's parser (formats/moe_config.h): the shape of a
// config tern parsed (shape_from_config, as for a GGUF file) and of config.json agree on the tiny
// MoE checkpoints, and Qwen's decoder_sparse_step / mlp_only_layers pick the layers transformers does.
TEST(PlanMoe, SameExpertsFromModelConfigAndFromConfigJson) {
  for (const char* arch : {"mixtral", "qwen2_moe", "qwen3_moe"}) {
    SCOPED_TRACE(arch);
    auto cfg = load_model_config(test::tiny_arch_dir(arch));
    ASSERT_TRUE(cfg.is_ok()) << cfg.status().message();
    auto json = load_model_shape(test::tiny_arch_dir(arch));
    ASSERT_TRUE(json.is_ok()) << json.status().message();
    const ModelShape from_cfg = shape_from_config(*cfg);
    EXPECT_TRUE(from_cfg.is_moe());
    EXPECT_EQ(count_params(from_cfg).total(), count_params(*json).total());
    EXPECT_EQ(count_params(from_cfg).active, count_params(*json).active);
  }
  auto q = parse_model_shape(R"({"model_type": "qwen2_moe", "vocab_size": 100, "hidden_size": 16,
      "num_hidden_layers": 6, "num_attention_heads": 2, "intermediate_size": 32, "num_experts": 4,
      "num_experts_per_tok": 2, "moe_intermediate_size": 8, "shared_expert_intermediate_size": 8,
      "decoder_sparse_step": 2, "mlp_only_layers": [3]})", "q.json");
  ASSERT_TRUE(q.is_ok()) << q.status().message();
  std::string layers;
  for (int l = 0; l < 6; ++l) layers += q->is_moe_layer(l) ? "M" : "d";
  EXPECT_EQ(layers, "dMdddM");  // (l + 1) % 2 == 0, minus layer 3
  auto bad = parse_model_shape(R"({"model_type": "mixtral", "vocab_size": 100, "hidden_size": 16,
      "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 32, "num_local_experts": 4,
      "num_experts_per_tok": 5})", "m.json");
  ASSERT_FALSE(bad.is_ok());
  EXPECT_NE(bad.status().message().find("m.json: num_experts_per_tok"), std::string::npos) << bad.status().message();
}

}  // namespace
}  // namespace tern::plan
