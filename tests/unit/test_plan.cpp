// Planner pieces: precisions, the catalog (shipped and user files), shapes from config.json,
// the split search and what it suggests when nothing fits, throughput targets, and the
// engine-facing KV budget.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "core/mapped_file.h"
#include "formats/model_config.h"
#include "plan/checkpoint_precision.h"
#include "plan/memory_budget.h"
#include "plan/planner.h"
#include "test_support.h"

namespace tern::plan {
namespace {

std::string config_path(const std::string& name) {
  return std::string(TERN_SOURCE_DIR) + "/tests/data/plan_configs/" + name + ".json";
}

PlanRequest request(const std::string& model, const std::string& weights, const std::string& dev) {
  PlanRequest r;
  r.model = *load_model_shape(config_path(model));
  r.weights = *parse_weight_precision(weights);
  r.kv = *parse_kv_precision("bf16");
  r.device = *Catalog::shipped()->find(dev);
  return r;
}

TEST(PlanPrecision, ParsesEveryFormAndRejectsTheRest) {
  EXPECT_EQ(parse_weight_precision("BF16")->matrix_bits(4096), 16);
  EXPECT_EQ(parse_weight_precision("f16")->name, "fp16");
  EXPECT_DOUBLE_EQ(parse_weight_precision("int8")->matrix_bits(4096), 8 + 32.0 / 4096);
  EXPECT_DOUBLE_EQ(parse_weight_precision("int4-g32")->matrix_bits(4096), 4 + 1.0);
  EXPECT_EQ(parse_weight_precision("int4")->name, "int4-g128");
  EXPECT_DOUBLE_EQ(parse_weight_precision("q6_k")->matrix_bits(4096), 6.5625);
  EXPECT_EQ(parse_weight_precision("Q4_K")->name, "Q4_K");
  EXPECT_TRUE(parse_weight_precision("Q4_K")->quantize_embeddings);
  EXPECT_FALSE(parse_weight_precision("int4-g128")->quantize_embeddings);
  for (const char* bad : {"", "int4-g", "int4-g7", "int4-gx", "int3", "q4_k_x", "int4-g999999"}) {
    auto p = parse_weight_precision(bad);
    ASSERT_FALSE(p.is_ok()) << bad;
    EXPECT_NE(p.status().message().find("precision"), std::string::npos) << p.status().message();
  }
  EXPECT_EQ(parse_kv_precision("fp8")->bytes, 1);
  EXPECT_EQ(parse_kv_precision("f32")->bytes, 4);
  EXPECT_FALSE(parse_kv_precision("int4").is_ok());
  // The KV caches tern has, and only those (an fp16 cache would be offered here and refused by the engine).
  auto fp16 = parse_kv_precision("fp16");
  ASSERT_FALSE(fp16.is_ok());
  EXPECT_NE(fp16.status().message().find("f32, bf16, int8, fp8"), std::string::npos) << fp16.status().message();
}

TEST(PlanPrecision, QuantizationConfigGivesTheCheckpointsPrecision) {
  auto of = [](const char* qc) { return precision_of_quant_config(nlohmann::json::parse(qc), "config.json"); };
  EXPECT_EQ(*of(R"({"quant_method": "fp8", "fmt": "e4m3", "weight_block_size": [128, 128]})"), "fp8");
  EXPECT_EQ(*of(R"({"quant_method": "awq", "bits": 4, "group_size": 128, "zero_point": true})"), "int4-g128");
  EXPECT_EQ(*of(R"({"quant_method": "awq", "w_bit": 4, "q_group_size": 64})"), "int4-g64");
  EXPECT_EQ(*of(R"({"quant_method": "gptq", "bits": 4, "group_size": 32, "desc_act": true})"), "int4-g32");
  EXPECT_EQ(*of(R"({"quant_method": "gptq", "bits": 4, "group_size": -1})"), "int4-channel");
  EXPECT_EQ(*of(R"({"quant_method": "gptq", "bits": 8, "group_size": 128})"), "int8");
  EXPECT_EQ(*of(R"({"quant_method": "compressed-tensors", "format": "pack-quantized", "config_groups": {"group_0":
      {"targets": ["Linear"], "weights": {"num_bits": 4, "type": "int", "strategy": "group", "group_size": 128}}}})"),
            "int4-g128");
  EXPECT_EQ(*of(R"({"quant_method": "compressed-tensors", "config_groups": {"g": {"weights":
      {"num_bits": 8, "type": "int", "strategy": "channel"}}}})"), "int8");
  EXPECT_EQ(*of(R"({"quant_method": "compressed-tensors", "config_groups": {"g": {"weights":
      {"num_bits": 8, "type": "float", "strategy": "tensor"}}}})"), "fp8");
  for (const char* bad : {R"({"quant_method": "bitsandbytes", "load_in_4bit": true})", R"({"bits": 4})",
                          R"({"quant_method": "gptq", "bits": 3})", R"({"quant_method": "awq", "bits": "4"})",
                          R"({"quant_method": "compressed-tensors", "config_groups": {"a": {"weights": {}},
                              "b": {"weights": {}}}})", R"([1])"}) {
    auto p = of(bad);
    ASSERT_FALSE(p.is_ok()) << bad;
    EXPECT_NE(p.status().message().find("config.json: quantization_config"), std::string::npos) << p.status().message();
  }
  // Every name it gives is one the planner prices.
  for (const char* name : {"fp8", "int8", "int4-g128", "int4-channel"}) EXPECT_TRUE(parse_weight_precision(name).is_ok());
  EXPECT_DOUBLE_EQ(parse_weight_precision("int4-channel")->matrix_bits(4096), 4 + 32.0 / 4096);
}

TEST(PlanShape, QuantizationConfigSetsTheDtypeOrSaysWhyNot) {
  EXPECT_EQ(load_model_shape(config_path("deepseek-v3"))->dtype, "fp8");
  EXPECT_EQ(load_model_shape(config_path("qwen2.5-7b-instruct-awq"))->dtype, "int4-g128");
  EXPECT_EQ(load_model_shape(config_path("llama-3.1-8b"))->dtype, "bf16");
  auto gptq3 = load_model_shape(config_path("mistral-7b-gptq-3bit"));
  ASSERT_TRUE(gptq3.is_ok()) << "the shape is still plannable with an explicit precision";
  EXPECT_NE(gptq3->dtype_error.find("3-bit"), std::string::npos) << gptq3->dtype_error;
}

TEST(PlanCatalog, ShipsTheIssuesDevicesAndUserFilesOverrideOrAdd) {
  auto c = Catalog::shipped();
  ASSERT_TRUE(c.is_ok()) << c.status().message();
  for (const char* id : {"h100-sxm", "h100-pcie", "h200", "a100-40", "a100-80", "l40s", "rtx-4090", "epyc-9654"}) {
    EXPECT_NE(c->find(id), nullptr) << id;
  }
  EXPECT_EQ(c->find("h100-sxm")->bandwidth_gbs, 3350);
  EXPECT_EQ(c->find("a100-80")->flops("fp8"), 312e12) << "no fp8 units: falls back to bf16";
  auto user = Catalog::parse(R"({"devices": [
      {"id": "h100-sxm", "memory_gib": 80, "bandwidth_gbs": 3000, "tflops": {"bf16": 900}, "price_per_hour": 1.5},
      {"id": "my-box", "kind": "cpu", "memory_gib": 64, "bandwidth_gbs": 80, "tflops": {"f32": 2}}]})",
                             "user.json");
  ASSERT_TRUE(user.is_ok()) << user.status().message();
  c->merge(*user);
  EXPECT_EQ(c->find("h100-sxm")->bandwidth_gbs, 3000);
  EXPECT_EQ(c->find("my-box")->flops("bf16"), 2e12);
}

TEST(PlanCatalog, BadEntriesNameTheFileDeviceAndKey) {
  struct Case {
    const char* json;
    const char* mention;
  };
  for (const Case& k : {Case{"[]", "devices"}, Case{R"({"devices": [{"memory_gib": 1}]})", "id: missing"},
                        Case{R"({"devices": [{"id": "x", "memory_gib": -1, "bandwidth_gbs": 1, "tflops": {"f32": 1}}]})",
                             "(x): memory_gib"},
                        Case{R"({"devices": [{"id": "x", "memory_gib": 1, "bandwidth_gbs": "fast", "tflops": {}}]})",
                             "bandwidth_gbs: expected a number"},
                        Case{R"({"devices": [{"id": "x", "memory_gib": 1, "bandwidth_gbs": 1}]})", "tflops"},
                        Case{R"({"devices": [{"id": "x", "kind": "tpu", "memory_gib": 1, "bandwidth_gbs": 1, "tflops": {"f32": 1}}]})",
                             "kind"},
                        Case{R"({"devices": [{"id": "x", "memory_gib": 1, "bandwidth_gbs": 1, "tflops": {"f32": 1},
                                "efficiency": {"decode": 7}}]})",
                             "efficiency: decode"},
                        Case{"{\"devices\": [", "invalid JSON"}}) {
    auto c = Catalog::parse(k.json, "mine.json");
    ASSERT_FALSE(c.is_ok()) << k.json;
    EXPECT_NE(c.status().message().find("mine.json"), std::string::npos) << c.status().message();
    EXPECT_NE(c.status().message().find(k.mention), std::string::npos) << c.status().message();
  }
}

TEST(PlanCatalog, SaveDeviceAddsThenReplaces) {
  test::TempDir dir;
  Device d = *Catalog::shipped()->find("dev-epyc-2vcpu");
  d.id = "this-machine";
  ASSERT_TRUE(save_device(dir.file("hw.json"), d).is_ok());
  d.bandwidth_gbs = 42;
  ASSERT_TRUE(save_device(dir.file("hw.json"), d).is_ok());
  auto c = Catalog::parse(*read_text_file(dir.file("hw.json")), "hw.json");
  ASSERT_TRUE(c.is_ok()) << c.status().message();
  ASSERT_EQ(c->devices().size(), 1u);
  EXPECT_EQ(c->devices()[0].bandwidth_gbs, 42);
  test::write_file(dir.file("broken.json"), "{");
  EXPECT_FALSE(save_device(dir.file("broken.json"), d).is_ok()) << "never overwrite a file it cannot read";
}

TEST(PlanShape, ReadsMoeMlaAndRejectsBrokenConfigs) {
  auto q = parse_model_shape(R"({"model_type": "qwen2_moe", "vocab_size": 1000, "hidden_size": 64,
      "num_hidden_layers": 4, "num_attention_heads": 4, "intermediate_size": 128, "num_experts": 8,
      "num_experts_per_tok": 2, "moe_intermediate_size": 32, "shared_expert_intermediate_size": 64,
      "decoder_sparse_step": 2})", "q.json");
  ASSERT_TRUE(q.is_ok()) << q.status().message();
  EXPECT_EQ(q->moe_layers(), 2);  // layers 1 and 3: Qwen's (layer + 1) % decoder_sparse_step == 0
  EXPECT_FALSE(q->is_moe_layer(0));
  EXPECT_TRUE(q->is_moe_layer(1));
  EXPECT_TRUE(q->attention_bias);
  // The shape tern already parsed agrees with the planner's own reading.
  auto cfg = load_model_config(test::model_dir("docs-llama-28m"));
  ASSERT_TRUE(cfg.is_ok());
  EXPECT_EQ(count_params(shape_from_config(*cfg)).total(), 27795968);
  for (const char* bad : {R"({"hidden_size": 64})", R"([1])",
                          R"({"vocab_size": 10, "hidden_size": 64, "num_hidden_layers": 1, "num_attention_heads": 3, "intermediate_size": 8})",
                          R"({"vocab_size": 10, "hidden_size": 64, "num_hidden_layers": 1, "num_attention_heads": 4,
                              "intermediate_size": 8, "num_local_experts": 4})"}) {
    auto s = parse_model_shape(bad, "bad.json");
    ASSERT_FALSE(s.is_ok()) << bad;
    EXPECT_NE(s.status().message().find("bad.json"), std::string::npos);
  }
}

TEST(PlanSplit, RespectsAGivenTpAndRejectsImpossibleOnes) {
  PlanRequest r = request("llama-3.1-70b", "bf16", "h100-sxm");
  r.context = 8192;
  r.tp = 4;
  auto p = make_plan(r);
  ASSERT_TRUE(p.is_ok());
  EXPECT_EQ(p->tp, 4);
  EXPECT_TRUE(p->fits);
  r.tp = 3;
  EXPECT_FALSE(make_plan(r).is_ok()) << "3 does not divide 64 heads";
  r.tp = 0, r.pp = 81;
  EXPECT_FALSE(make_plan(r).is_ok());
}

TEST(PlanSplit, TooLongAContextSaysSoAndSuggestsWhatFits) {
  // Llama-3.1-8B, 64 sequences of 128K tokens: 64 × 131072 × 128 KiB = 1.1 TB of KV on one RTX 4090.
  PlanRequest r = request("llama-3.1-8b", "bf16", "rtx-4090");
  r.context = 131072;
  r.concurrency = 1;
  r.tp = 1, r.pp = 1;
  auto p = make_plan(r);
  ASSERT_TRUE(p.is_ok());
  EXPECT_FALSE(p->fits);  // 16 GB of weights leave ~5 GB: 17 GB of KV for one 128K sequence does not fit
  EXPECT_NE(p->reason.find("KV cache"), std::string::npos) << p->reason;
  bool shorter = false, more = false;
  for (const auto& s : p->suggestions) {
    shorter = shorter || s.find("shorter context") != std::string::npos;
    more = more || s.find("more devices") != std::string::npos;
  }
  EXPECT_TRUE(shorter);
  EXPECT_TRUE(more);
}

// A device's fixed step costs add to the roofline exactly: per step, per layer, per sequence, per
// sequence per layer and per matmul call (7 per Llama layer plus the LM head).
TEST(PlanStepOverhead, FixedCostsAddToEveryDecodeStep) {
  PlanRequest r = request("llama-3.1-8b", "bf16", "h100-sxm");
  r.context = 4096;
  r.concurrency = 8;
  const Plan bare = *make_plan(r);
  EXPECT_EQ(bare.decode_step_fixed_s, 0) << "the shipped GPU entries carry no measured overhead";
  r.device.step_overhead_us = 100;
  r.device.layer_overhead_us = 10;
  r.device.sequence_overhead_us = 5;
  r.device.sequence_layer_overhead_us = 0.5;
  r.device.matmul_call_us = 2;
  const Plan with = *make_plan(r);
  // 32 layers, 8 sequences: 100 + 32·10 + 8·(5 + 32·0.5) + (32·7 + 1)·2 = 100 + 320 + 168 + 450 us.
  const double fixed = (100 + 320 + 168 + 450) * 1e-6;
  EXPECT_NEAR(with.decode_step_fixed_s, fixed, 1e-12);
  EXPECT_NEAR(with.decode_step_s - bare.decode_step_s, fixed, 1e-12);
  EXPECT_LT(with.decode_tok_s, bare.decode_tok_s);
}

TEST(PlanStepOverhead, CatalogCarriesTheOverheadAndRejectsNegativeOnes) {
  Device d = *Catalog::shipped()->find("dev-epyc-2vcpu");
  d.id = "probe";
  d.step_overhead_us = 12, d.layer_overhead_us = 3.5, d.sequence_overhead_us = 7;
  d.sequence_layer_overhead_us = 0.25, d.matmul_call_us = 1.5;
  auto c = Catalog::parse("{\"devices\": [" + device_to_json(d) + "]}", "hw.json");
  ASSERT_TRUE(c.is_ok()) << c.status().message();
  const Device& back = c->devices()[0];
  EXPECT_EQ(back.step_overhead_us, 12);
  EXPECT_EQ(back.layer_overhead_us, 3.5);
  EXPECT_EQ(back.sequence_overhead_us, 7);
  EXPECT_EQ(back.sequence_layer_overhead_us, 0.25);
  EXPECT_EQ(back.matmul_call_us, 1.5);
  nlohmann::json j = nlohmann::json::parse(device_to_json(d));
  j["overhead_us"]["layer"] = -1;
  auto bad = Catalog::parse("{\"devices\": [" + j.dump() + "]}", "hw.json");
  ASSERT_FALSE(bad.is_ok());
  EXPECT_NE(bad.status().message().find("layer"), std::string::npos) << bad.status().message();
}

TEST(PlanThroughput, ATargetPicksTheBatchAndReplicas) {
  PlanRequest r = request("llama-3.1-8b", "bf16", "h100-sxm");
  r.context = 4096;
  r.target_output_tok_s = 1000;
  auto p = make_plan(r);
  ASSERT_TRUE(p.is_ok());
  EXPECT_EQ(p->replicas, 1);
  EXPECT_GE(p->decode_tok_s, 1000);
  PlanRequest smaller = r;
  smaller.concurrency = p->concurrency - 1;
  smaller.target_output_tok_s = 0;
  EXPECT_LT(make_plan(smaller)->decode_tok_s, 1000) << "the smallest batch that reaches the target";
  r.target_output_tok_s = 1e6;  // beyond one GPU: replicas
  p = make_plan(r);
  ASSERT_TRUE(p.is_ok());
  EXPECT_GT(p->replicas, 1);
  EXPECT_GE(p->decode_tok_s, 1e6 * 0.999);
}

TEST(PlanMemoryBudget, ParsesMeminfoAndSizesTheKvPool) {
  auto h = parse_meminfo("MemTotal:       24000000 kB\nMemFree: 1000 kB\nMemAvailable:   20000000 kB\n");
  ASSERT_TRUE(h.is_ok());
  EXPECT_EQ(h->available_bytes, 20000000.0 * 1024);
  EXPECT_FALSE(parse_meminfo("MemTotal: 5 kB\n").is_ok());
  auto cfg = load_model_config(test::model_dir("docs-llama-28m"));
  ASSERT_TRUE(cfg.is_ok());
  KvBudgetOptions o;
  o.max_sequences = 4;
  auto b = default_kv_budget(*cfg, *h, o);
  ASSERT_TRUE(b.is_ok()) << b.status().message();
  // bf16: 2 × 8 layers × 4 heads × 64 × 2 bytes = 8 KiB per token; capped at 4 × 4096 tokens.
  EXPECT_EQ(b->kv_bytes_per_token, 8192);
  EXPECT_EQ(b->bytes, size_t(4) * 4096 * 8192);
  EXPECT_EQ(b->max_tokens, 4 * 4096);
  // A host with 60 MB available cannot hold the 55.6 MB of weights and a 4096-token sequence.
  HostMemory small{1e9, 60e6};
  auto no = default_kv_budget(*cfg, small, o);
  ASSERT_FALSE(no.is_ok());
  EXPECT_NE(no.status().message().find("does not fit"), std::string::npos) << no.status().message();
  EXPECT_FALSE(check_fits_host(*cfg, small, 4096, 0).is_ok());
  EXPECT_TRUE(check_fits_host(*cfg, *h, 4096, 0).is_ok());
}

TEST(PlanReport, JsonAndTableCarryTheFigures) {
  PlanRequest r = request("mixtral-8x7b", "int4-g128", "a100-80");
  r.context = 32768;
  auto p = make_plan(r);
  ASSERT_TRUE(p.is_ok());
  const auto j = nlohmann::json::parse(plan_to_json(r, *p));
  EXPECT_EQ(j["model"]["parameters"], p->params.total());
  EXPECT_EQ(j["split"]["devices"], p->devices());
  EXPECT_GT(j["decode_tok_s"].get<double>(), 0);
  const std::string t = plan_to_table(r, *p);
  for (const char* s : {"weights", "KV cache per token", "largest concurrency", "prefill", "decode", "$ per million"}) {
    EXPECT_NE(t.find(s), std::string::npos) << s;
  }
}

}  // namespace
}  // namespace tern::plan
