// The planner against published facts about real models, each from its config.json
// (tests/data/plan_configs/, the public values) and with the arithmetic written out.
#include <gtest/gtest.h>

#include "core/mapped_file.h"
#include "formats/safetensors.h"
#include "model/synth.h"
#include "plan/planner.h"
#include "plan_test_util.h"
#include "test_support.h"

namespace tern::plan {
namespace {

Device device(const std::string& id) {
  auto c = Catalog::shipped();
  EXPECT_TRUE(c.is_ok()) << c.status().message();
  const Device* d = c.is_ok() ? c->find(id) : nullptr;
  EXPECT_NE(d, nullptr) << id;
  return d ? *d : Device{};
}

Plan plan(PlanRequest r) {
  auto p = make_plan(r);
  EXPECT_TRUE(p.is_ok()) << p.status().message();
  return p.is_ok() ? *p : Plan{};
}

PlanRequest request(const std::string& model, const std::string& weights, const std::string& dev) {
  PlanRequest r;
  r.model = shape(model);
  r.weights = *parse_weight_precision(weights);
  r.kv = *parse_kv_precision("bf16");
  r.device = device(dev);
  return r;
}

// Llama attention with GQA: q and o [h, h], k and v [kv × hd, h].
int64_t gqa_attention(int64_t h, int64_t kv_dim) { return 2 * h * h + 2 * h * kv_dim; }

TEST(PlanKnownAnswers, Llama2_70B_Fp16Is138GBAndDoesNotFitOne80GBGpu) {
  // 80 layers × (attention 2·8192² + 2·8192·1024 + MLP 3·8192·28672 + 2 norms) + final norm
  // + embedding and lm_head 2 · 32000 · 8192 = 68.98 B parameters; × 2 bytes = 137.95 GB (the "140 GB").
  const int64_t layer = gqa_attention(8192, 1024) + 3LL * 8192 * 28672 + 2 * 8192;
  const int64_t total = 80 * layer + 8192 + 2LL * 32000 * 8192;
  PlanRequest r = request("llama-2-70b", "fp16", "h100-sxm");
  EXPECT_EQ(count_params(r.model).total(), total);
  const Plan one = [&] { PlanRequest q = r; q.tp = 1, q.pp = 1; return plan(q); }();
  EXPECT_NEAR(one.bytes.total, 2.0 * double(total), 1e3);
  EXPECT_NEAR(one.bytes.total / 1e9, 138.0, 0.5);
  EXPECT_FALSE(one.fits);
  EXPECT_NE(one.reason.find("weights need"), std::string::npos) << one.reason;
  EXPECT_FALSE(one.suggestions.empty());
  // Unconstrained, the planner splits it over 2 GPUs: 69 GB each + 1.6 GB runtime < 79 GB usable.
  const Plan two = plan(r);
  EXPECT_TRUE(two.fits) << two.reason;
  EXPECT_EQ(two.tp * two.pp, 2);
}

TEST(PlanKnownAnswers, Llama31_8B_KvIs128KiBPerTokenInBf16) {
  // 2 (K and V) × 32 layers × 8 KV heads × 128 head_dim × 2 bytes = 131072 bytes = 128 KiB.
  PlanRequest r = request("llama-3.1-8b", "bf16", "h100-sxm");
  r.context = 8192;
  const Plan p = plan(r);
  EXPECT_EQ(p.kv_bytes_per_token, 2.0 * 32 * 8 * 128 * 2);
  EXPECT_EQ(p.kv_bytes_per_token, 128.0 * 1024);
  // 32 × (attention 2·4096² + 2·4096·1024 + MLP 3·4096·14336 + 2·4096) + 4096 + 2 · 128256 · 4096 = 8.03 B.
  EXPECT_EQ(p.params.total(), 32 * (gqa_attention(4096, 1024) + 3LL * 4096 * 14336 + 2 * 4096) + 4096 + 2LL * 128256 * 4096);
  // fp8 KV: 1 byte per element + an f32 scale per token and head for K and for V (8 bytes per head and layer).
  r.kv = *parse_kv_precision("fp8");
  EXPECT_EQ(plan(r).kv_bytes_per_token, 32 * (2.0 * 8 * 128 + 8 * 8));
}

TEST(PlanKnownAnswers, Mixtral8x7B_46_7BTotal_12_9BActive) {
  // Per layer: attention 2·4096² + 2·4096·1024 = 41.9 M; 8 experts × 3·4096·14336 = 1409 M; router 8·4096.
  // Total 32 × (41.9 M + 1409 M + 32 K + 8 K norms) + 2·32000·4096 = 46.70 B;
  // a token visits 2 of 8 experts: 46.70 B − 32 × 6 × 176.2 M = 12.88 B.
  const int64_t expert = 3LL * 4096 * 14336;
  const int64_t layer = gqa_attention(4096, 1024) + 8 * expert + 8 * 4096 + 2 * 4096;
  const int64_t total = 32 * layer + 4096 + 2LL * 32000 * 4096;
  const ParamCounts c = count_params(shape("mixtral-8x7b"));
  EXPECT_EQ(c.total(), total);
  EXPECT_EQ(c.active, total - 32 * 6 * expert);
  EXPECT_NEAR(double(c.total()) / 1e9, 46.7, 0.05);
  EXPECT_NEAR(double(c.active) / 1e9, 12.9, 0.05);
}

TEST(PlanKnownAnswers, DeepSeekV3_MlaCachesTheLatentAnd671BParameters) {
  const ModelShape s = shape("deepseek-v3");
  ASSERT_TRUE(s.is_mla());
  // MLA caches kv_lora_rank 512 + qk_rope_head_dim 64 = 576 values per layer for all 128 heads:
  // 576 × 61 layers × 2 bytes = 70272 bytes (68.6 KiB) per token in bf16, vs
  // 2 × 128 heads × 192 × 61 × 2 = 5.99 MB had it cached full K and V.
  PlanRequest r = request("deepseek-v3", "fp8", "h200");
  r.context = 4096;
  const Plan p = plan(r);
  EXPECT_EQ(p.kv_bytes_per_token, (512.0 + 64) * 61 * 2);
  // Parameters: 671 B total (the published figure, without the 14 B MTP module), 37 B active.
  EXPECT_NEAR(double(p.params.total()) / 1e9, 671.0, 1.0);
  EXPECT_NEAR(double(p.params.active) / 1e9, 37.5, 0.7);
  // 3 dense layers + 58 MoE layers of 256 routed experts of 3·7168·2048 each.
  EXPECT_EQ(s.moe_layers(), 58);
  EXPECT_EQ(p.params.routed_experts, 58LL * 256 * 3 * 7168 * 2048);
  // FP8 weights ≈ 671 GB do not fit one 141 GB H200 but fit 8 (the usual DeepSeek-V3 deployment).
  EXPECT_TRUE(p.fits) << p.reason;
  EXPECT_EQ(p.tp * p.pp, 8);
}

TEST(PlanKnownAnswers, Llama31_405B_Bf16NeedsTwoNodesFp8FitsOne) {
  // 126 × (2·16384² + 2·16384·1024 + 3·16384·53248 + 2·16384) + 16384 + 2·128256·16384 = 405.85 B.
  const int64_t total = 126 * (gqa_attention(16384, 1024) + 3LL * 16384 * 53248 + 2 * 16384) + 16384 + 2LL * 128256 * 16384;
  PlanRequest r = request("llama-3.1-405b", "bf16", "h100-sxm");
  r.context = 8192;
  const Plan bf16 = plan(r);
  EXPECT_EQ(bf16.params.total(), total);
  // 811.7 GB of bf16 weights: 8 × 79 GB usable is not enough, so two nodes (tp 8 × pp 2).
  EXPECT_NEAR(bf16.bytes.total / 1e9, 811.7, 0.5);
  EXPECT_EQ(bf16.tp, 8);
  EXPECT_EQ(bf16.pp, 2);
  // FP8: 8 bits + one f32 scale per row: 405.85 GB + bf16 embeddings ≈ 410 GB → one node of 8.
  r.weights = *parse_weight_precision("fp8");
  const Plan fp8 = plan(r);
  EXPECT_TRUE(fp8.fits);
  EXPECT_EQ(fp8.tp * fp8.pp, 8);
}

TEST(PlanKnownAnswers, Llama31_70B_Parameters) {
  // Llama-2-70B's body with the 128256-token vocabulary: 70.55 B.
  const int64_t total = 80 * (gqa_attention(8192, 1024) + 3LL * 8192 * 28672 + 2 * 8192) + 8192 + 2LL * 128256 * 8192;
  EXPECT_EQ(count_params(shape("llama-3.1-70b")).total(), total);
  EXPECT_NEAR(double(total) / 1e9, 70.55, 0.01);
}

TEST(PlanKnownAnswers, Qwen25_7B_QkvBiasesAnd56KiBKv) {
  // 28 × (2·3584² + 2·3584·512 + q/k/v biases 3584 + 2·512 + MLP 3·3584·18944 + 2·3584) + 3584
  // + 2 · 152064 · 3584 = 7.62 B; KV 2 × 28 × 4 × 128 × 2 = 57344 bytes = 56 KiB per token.
  const ModelShape s = shape("qwen2.5-7b");
  const int64_t total =
      28 * (gqa_attention(3584, 512) + 3584 + 2 * 512 + 3LL * 3584 * 18944 + 2 * 3584) + 3584 + 2LL * 152064 * 3584;
  EXPECT_EQ(count_params(s).total(), total);
  EXPECT_NEAR(double(total) / 1e9, 7.62, 0.01);
  EXPECT_EQ(s.kv_elems_per_token_layer() * s.layers * 2, 57344);
}

TEST(PlanKnownAnswers, Qwen3_8B_QkNormsAnd144KiBKv) {
  // 36 × (2·4096² + 2·4096·1024 + q/k norms 2·128 + MLP 3·4096·12288 + 2·4096) + 4096 + 2·151936·4096 = 8.19 B.
  const ModelShape s = shape("qwen3-8b");
  const int64_t total =
      36 * (gqa_attention(4096, 1024) + 2 * 128 + 3LL * 4096 * 12288 + 2 * 4096) + 4096 + 2LL * 151936 * 4096;
  EXPECT_EQ(count_params(s).total(), total);
  EXPECT_NEAR(double(total) / 1e9, 8.19, 0.01);
  EXPECT_EQ(s.kv_elems_per_token_layer() * s.layers * 2, 36 * 2 * 8 * 128 * 2);  // 147456 = 144 KiB
}

TEST(PlanKnownAnswers, Mistral7B_Parameters) {
  // Llama-3.1-8B's body with a 32000-token vocabulary: 7.24 B.
  const int64_t total = 32 * (gqa_attention(4096, 1024) + 3LL * 4096 * 14336 + 2 * 4096) + 4096 + 2LL * 32000 * 4096;
  EXPECT_EQ(count_params(shape("mistral-7b")).total(), total);
  EXPECT_NEAR(double(total) / 1e9, 7.24, 0.01);
}

TEST(PlanKnownAnswers, Gemma2_9B_TiedEmbeddingsFourNormsAnd336KiBKv) {
  // Tied (PretrainedConfig's default, not overridden): 42 × (q/o 2·3584·4096 + k/v 2·3584·2048
  // + MLP 3·3584·14336 + 4 norms) + 3584 + 256000·3584 = 9.24 B; KV 2 × 42 × 8 × 256 × 2 = 344064 bytes.
  const ModelShape s = shape("gemma-2-9b");
  EXPECT_TRUE(s.tied_embeddings);
  const int64_t total = 42 * (2LL * 3584 * 4096 + 2LL * 3584 * 2048 + 3LL * 3584 * 14336 + 4 * 3584) + 3584 + 256000LL * 3584;
  EXPECT_EQ(count_params(s).total(), total);
  EXPECT_NEAR(double(total) / 1e9, 9.24, 0.01);
  EXPECT_EQ(s.kv_elems_per_token_layer() * s.layers * 2, 344064);
}

TEST(PlanKnownAnswers, Llama32_1B_MatchesTheSynthCheckpointAndDocsLlamaItsReference) {
  // Tied: 16 × (2·2048² + 2·2048·512 + 3·2048·8192 + 2·2048) + 2048 + 128256·2048 = 1.236 B,
  // the count of the tensors `tern synth --shape llama-3.2-1b` writes.
  EXPECT_EQ(count_params(shape("llama-3.2-1b")).total(), synth_parameter_count(*find_synth_shape("llama-3.2-1b")));
  // docs-llama-28m: the parameter count transformers reported (reference.json "params").
  auto s = load_model_shape(test::model_dir("docs-llama-28m"));
  ASSERT_TRUE(s.is_ok()) << s.status().message();
  EXPECT_EQ(count_params(*s).total(), 27795968);
}

TEST(PlanKnownAnswers, Llama31_8B_Int4G128IsAbout5_8GB) {
  // Matrices 4 bits + an f32 scale per 128 weights = 4.25 bits: 6.98 B × 4.25 / 8 = 3.71 GB;
  // embedding and lm_head are stored bf16 (2 · 128256 · 4096 · 2 = 2.10 GB); norms bf16: 5.81 GB on disk.
  const ModelShape s = shape("llama-3.1-8b");
  const double matrices = 32.0 * (gqa_attention(4096, 1024) + 3.0 * 4096 * 14336);
  const double norms = (32.0 * 2 * 4096 + 4096) * 2;
  const double on_disk = matrices * 4.25 / 8 + 2.0 * 128256 * 4096 * 2 + norms;
  EXPECT_NEAR(on_disk / 1e9, 5.81, 0.01);
  // tern runs it with the bf16 embedding table and an int8 copy of the LM head (4096 bytes + an f32
  // scale per vocabulary row, 0.53 GB) that decode streams instead of the stored bf16 head: 5.28 GB.
  const double int8_head = 128256.0 * (4096 + 4);
  const WeightBytes b = weight_bytes(s, *parse_weight_precision("int4-g128"));
  EXPECT_NEAR(b.total, matrices * 4.25 / 8 + 128256.0 * 4096 * 2 + int8_head + norms, 1.0);
  EXPECT_NEAR(b.total / 1e9, 5.28, 0.01);
  EXPECT_NEAR(b.dense_stream, matrices * 4.25 / 8 + int8_head + norms, 1.0);
  // GGUF Q4_K: 4.5 bits per weight everywhere, the embedding and output too.
  const double q4k = weight_bytes(s, *parse_weight_precision("Q4_K")).total;
  EXPECT_NEAR(q4k, (matrices + 2.0 * 128256 * 4096) * 4.5 / 8 + (32.0 * 2 * 4096 + 4096) * 4, 1.0);
}

TEST(PlanKnownAnswers, Llama31_8B_OnOneH100_ConcurrencyAndDecodeRoofline) {
  PlanRequest r = request("llama-3.1-8b", "bf16", "h100-sxm");
  r.context = 8192;
  const Plan p = plan(r);
  ASSERT_TRUE(p.fits);
  EXPECT_EQ(p.tp * p.pp, 1);
  // usable 80 GiB × 0.92 − weights 16.06 GB − runtime 1.5 GiB − activations
  // (2048 tokens × (3·4096 + 2·4096 + 2·14336) × 2 bytes + 128256 × 4) = 61.2 GB for KV;
  // ÷ (8192 tokens × 128 KiB = 1.07 GB per sequence) = 56 sequences.
  const double gib = double(1 << 30);
  const double act = 2048.0 * (3 * 4096 + 2 * 4096 + 2 * 14336) * 2 + 128256.0 * 4;
  const double free_kv = 80 * gib * 0.92 - p.bytes.total - 1.5 * gib - act;
  EXPECT_EQ(p.max_concurrency, int64_t(free_kv / (8192.0 * 131072)));
  EXPECT_EQ(p.max_concurrency, 56);
  // Batch 1, nearly empty context: every matrix once per token (the embedding is gathered, not read):
  // 16.06 GB − 1.05 GB = 15.01 GB at 3350 GB/s × 0.75 → 167 tok/s.
  PlanRequest one = r;
  one.concurrency = 1, one.context = 2, one.prompt_tokens = 1;
  const Plan b1 = plan(one);
  const double streamed = b1.bytes.total - 128256.0 * 4096 * 2;
  EXPECT_NEAR(b1.decode_tok_s_per_seq, 3350e9 * 0.75 / streamed, 1.0);
  EXPECT_NEAR(b1.decode_tok_s_per_seq, 167, 2);
  // $2.99 per hour for 167 tok/s: 2.99 / (167 × 3600) × 1e6 = $4.97 per million output tokens.
  EXPECT_NEAR(b1.cost_per_m_output, 2.99 / (b1.decode_tok_s * 3600) * 1e6, 1e-9);
  EXPECT_NEAR(b1.joules_per_output_token, 700 / b1.decode_tok_s, 1e-9);
}

}  // namespace
}  // namespace tern::plan

namespace tern::plan {
namespace {

// Every tiny checkpoint of ../shared/models/tiny-archs: the planner's count from config.json alone
// equals the element count of the tensors transformers saved (GQA, biases, tied embeddings, q/k norms,
// Gemma-2 and GLM-4 post-norms, GPT-2 LayerNorm biases and positions, MoE with shared experts, MLA).
TEST(PlanKnownAnswers, EveryTinyArchitectureMatchesItsCheckpoint) {
  for (const char* arch : {"llama", "llama_tied", "qwen2", "qwen3", "mistral_swa", "mixtral", "qwen2_moe", "qwen3_moe",
                           "gemma2", "phi3", "glm4", "gpt2", "deepseek_v3"}) {
    const std::string dir = test::tiny_arch_dir(arch);
    auto s = load_model_shape(dir);
    ASSERT_TRUE(s.is_ok()) << s.status().message();
    auto store = SafetensorsStore::open_dir(dir);
    ASSERT_TRUE(store.is_ok()) << store.status().message();
    int64_t n = 0;
    for (const auto& t : store->tensors()) n += t.numel();
    EXPECT_EQ(count_params(*s).total(), n) << arch;
  }
}

}  // namespace
}  // namespace tern::plan
