// tern plan as a user runs it: the table and --json for a config.json, the catalog, one-line
// errors for bad input, --calibrate into a user catalog, and --check on docs-llama-28m.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "core/mapped_file.h"
#include "test_support.h"

namespace tern::test {
namespace {

std::string config(const std::string& name) {
  return "'" + std::string(TERN_SOURCE_DIR) + "/tests/data/plan_configs/" + name + ".json'";
}

void expect_one_line_error(const CommandResult& r, const std::string& must_mention) {
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("tern: error: "), std::string::npos) << r.err;
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
  EXPECT_NE(r.err.find(must_mention), std::string::npos) << r.err;
}

TEST(CliPlan, TableForLlama70BOnH100) {
  auto r = run_tern("plan -m " + config("llama-2-70b") + " -w fp16 -d h100-sxm --ctx 4096");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  for (const char* s : {"fits:", "2 × h100-sxm", "weights", "KV cache per token", "320.0 KiB", "largest concurrency",
                        "tok/s", "$ per million tokens", "energy per token"}) {
    EXPECT_NE(r.out.find(s), std::string::npos) << s << "\n" << r.out;
  }
}

TEST(CliPlan, JsonSaysWhyItDoesNotFitAndWhatWould) {
  auto r = run_tern("plan -m " + config("llama-2-70b") + " -w fp16 -d h100-sxm --tp 1 --pp 1 --json");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto j = nlohmann::json::parse(r.out);
  EXPECT_FALSE(j["fits"].get<bool>());
  EXPECT_NE(j["reason"].get<std::string>().find("weights need"), std::string::npos);
  ASSERT_FALSE(j["suggestions"].empty());
  EXPECT_NE(j["suggestions"].dump().find("more devices"), std::string::npos) << j["suggestions"];
  EXPECT_NE(j["suggestions"].dump().find("fp8"), std::string::npos) << j["suggestions"];
  EXPECT_NEAR(j["memory_bytes"]["weights_total"].get<double>() / 1e9, 138, 1);
}

TEST(CliPlan, ListsTheCatalog) {
  auto r = run_tern("plan --list-devices");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  for (const char* id : {"h100-sxm", "h100-pcie", "h200", "a100-40", "a100-80", "l40s", "rtx-4090"}) {
    EXPECT_NE(r.out.find(id), std::string::npos) << id;
  }
}

TEST(CliPlan, BadInputIsOneLineError) {
  expect_one_line_error(run_tern("plan -m " + config("llama-3.1-8b") + " -d tpu-v9"), "unknown device 'tpu-v9'");
  expect_one_line_error(run_tern("plan -m " + config("llama-3.1-8b") + " -w int3"), "unknown weight precision");
  expect_one_line_error(run_tern("plan -m " + config("llama-3.1-8b") + " --kv-dtype q4"), "KV cache dtype");
  expect_one_line_error(run_tern("plan -m " + config("llama-3.1-8b") + " --tp 3"), "does not divide");
  expect_one_line_error(run_tern("plan -m /nonexistent/config.json"), "/nonexistent/config.json");
  expect_one_line_error(run_tern("plan -m /nonexistent/model.gguf"), "model.gguf");
  expect_one_line_error(run_tern("plan"), "-m");
  TempDir dir;
  write_file(dir.file("hw.json"), "{\"devices\": 3}");
  expect_one_line_error(run_tern("plan -m " + config("llama-3.1-8b") + " --catalog '" + dir.file("hw.json") + "'"),
                        "hw.json");
}

TEST(CliPlan, PlansAGgufFileAtItsRealBytes) {
  TempDir dir;
  const std::string gguf = dir.file("docs-q8.gguf");
  auto q = run_tern("gguf quantize -m '" + model_dir("docs-llama-28m") + "' -o '" + gguf + "' --type Q8_0 --quiet");
  ASSERT_EQ(q.exit_code, 0) << q.err;
  auto r = run_tern("plan -m '" + gguf + "' -d dev-epyc-2vcpu --ctx 1024 -c 1 --json");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["model"]["parameters"], 27795968) << "the same model as its safetensors checkpoint";
  EXPECT_NE(j["weights"].get<std::string>().find("Q8_0"), std::string::npos) << j["weights"];
  // Q8_0 is 8.5 bits per weight; the norms stay F32: about 27.8 M × 8.5 / 8 = 29.5 MB.
  EXPECT_NEAR(j["memory_bytes"]["weights_total"].get<double>() / 1e6, 29.6, 0.5);
}

// The checkpoint's precision is the default: a quantization_config is read, not planned at torch_dtype.
TEST(CliPlan, PlansAQuantizedCheckpointAtItsStoredPrecision) {
  auto ds = run_tern("plan -m " + config("deepseek-v3") + " -d h100-sxm --ctx 4096 --json");
  ASSERT_EQ(ds.exit_code, 0) << ds.err;
  const auto d = nlohmann::json::parse(ds.out);
  EXPECT_EQ(d["weights"], "fp8");
  // 671 B parameters at one byte (+ per-row scales), the embedding and LM head in bf16: ~0.68 TB, not 1.34.
  EXPECT_NEAR(d["memory_bytes"]["weights_total"].get<double>() / 1e9, 680, 15) << ds.out;
  auto bf16 = run_tern("plan -m " + config("deepseek-v3") + " -w bf16 -d h100-sxm --ctx 4096 --json");
  ASSERT_EQ(bf16.exit_code, 0) << bf16.err;
  EXPECT_GT(nlohmann::json::parse(bf16.out)["memory_bytes"]["weights_total"].get<double>() / 1e9, 1300);

  auto awq = run_tern("plan -m " + config("qwen2.5-7b-instruct-awq") + " -d h100-sxm --ctx 4096 --json");
  ASSERT_EQ(awq.exit_code, 0) << awq.err;
  EXPECT_EQ(nlohmann::json::parse(awq.out)["weights"], "int4-g128");
  auto fp8 = run_tern("plan -m " + config("llama-3.1-8b-instruct-fp8-dynamic") + " -d h100-sxm --ctx 4096 --json");
  ASSERT_EQ(fp8.exit_code, 0) << fp8.err;
  EXPECT_EQ(nlohmann::json::parse(fp8.out)["weights"], "fp8");

  // A quantization the planner cannot price is an error naming it, unless -w says what to plan.
  expect_one_line_error(run_tern("plan -m " + config("mistral-7b-gptq-3bit") + " -d h100-sxm"), "3-bit");
  auto w = run_tern("plan -m " + config("mistral-7b-gptq-3bit") + " -w Q3_K -d h100-sxm --json");
  EXPECT_EQ(w.exit_code, 0) << w.err;
}

TEST(CliPlan, CalibrateWritesThisMachineIntoTheUserCatalog) {
  TempDir dir;
  auto r = run_tern("plan --calibrate --catalog '" + dir.file("hw.json") + "' -t 1");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto j = nlohmann::json::parse(*read_text_file(dir.file("hw.json")));
  ASSERT_EQ(j["devices"].size(), 1u);
  EXPECT_EQ(j["devices"][0]["id"], "this-machine");
  EXPECT_GT(j["devices"][0]["bandwidth_gbs"].get<double>(), 0.5);
  EXPECT_GT(j["devices"][0]["tflops"]["bf16"].get<double>(), 1e-3);
  auto p = run_tern("plan -m " + config("llama-3.2-1b") + " --ctx 2048 -c 1 -d this-machine --catalog '" +
                    dir.file("hw.json") + "' --json");
  ASSERT_EQ(p.exit_code, 0) << p.err;
  EXPECT_GT(nlohmann::json::parse(p.out)["decode_tok_s"].get<double>(), 0);
}

TEST(CliPlan, CheckOnDocsLlamaPredictsMemoryWithinTenPercent) {
  auto r = run_tern("plan --check -m '" + model_dir("docs-llama-28m") + "' -d dev-epyc-2vcpu --check-prompt 64 "
                    "--check-new 64 --json");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto j = nlohmann::json::parse(r.out);
  const auto& mem = j["rows"][0];
  EXPECT_NE(mem["what"].get<std::string>().find("memory"), std::string::npos);
  EXPECT_LE(std::fabs(mem["error"].get<double>()), 0.10) << r.out;
  EXPECT_GT(j["rows"][1]["measured"].get<double>(), 0) << "decode tok/s measured";
}

TEST(CliPlan, CheckRunsThePlannedConcurrencyThroughTheEngine) {
  auto r = run_tern("plan --check -m '" + model_dir("docs-llama-28m") + "' -d dev-epyc-2vcpu -c 4 --check-prompt 32 "
                    "--check-new 16 --json");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["concurrency"].get<int>(), 4);
  // 4 sequences of 48 tokens in bf16: 4 × 48 × 16 KiB per token (8 layers × K,V × 4 heads × 64 × 2 bytes).
  EXPECT_NEAR(j["predicted_breakdown_bytes"]["kv"].get<double>(), 4.0 * 48 * 8192, 1.0);
  EXPECT_LE(std::fabs(j["rows"][0]["error"].get<double>()), 0.10) << r.out;
  EXPECT_NE(j["rows"][1]["what"].get<std::string>().find("4 in flight"), std::string::npos);
  EXPECT_GT(j["rows"][1]["measured"].get<double>(), 0);
}

}  // namespace
}  // namespace tern::test
