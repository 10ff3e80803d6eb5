// The tern binary as a user runs it: outputs on the right streams, and one-line errors with a
// non-zero exit for every kind of bad input.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "core/mapped_file.h"
#include "test_support.h"

namespace tern::test {
namespace {

const std::string kDocs = model_dir("docs-llama-28m");

nlohmann::json reference() { return nlohmann::json::parse(*read_text_file(kDocs + "/reference.json")); }

// An error is one line on stderr, prefixed "tern: error:", and a non-zero exit code.
void expect_one_line_error(const CommandResult& r, const std::string& must_mention) {
  EXPECT_NE(r.exit_code, 0);
  EXPECT_EQ(r.out, "");
  EXPECT_NE(r.err.find("tern: error: "), std::string::npos) << r.err;
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
  EXPECT_NE(r.err.find(must_mention), std::string::npos) << r.err;
}

TEST(Cli, RunGreedyPrintsExactlyTheReferenceContinuation) {
  const auto ref = reference();
  const auto& p = ref["prompts"][0];
  auto r = run_tern("run -m '" + kDocs + "' -p '" + p["text"].get<std::string>() + "' -n 32 --temp 0");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, p["greedy32_text"].get<std::string>() + "\n");
  EXPECT_NE(r.err.find("tok/s"), std::string::npos) << "timings go to stderr";
}

TEST(Cli, RunReadsThePromptFromStdinAndStopsAtAStopString) {
  auto r = run_tern("run -m '" + kDocs + "' --stdin -n 32 --temp 0 -q --stop ' scheduler'",
                    "The kernel scheduler decides");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  // greedy32_text is " the kernel to be scheduled\nby the kernel.  This is the kernel scheduler ..."
  EXPECT_EQ(r.out, " the kernel to be scheduled\nby the kernel.  This is the kernel\n");
}

TEST(Cli, RunSamplingIsReproducibleWithASeed) {
  const std::string cmd = "run -m '" + kDocs + "' -p 'PostgreSQL' -n 24 --temp 0.9 --top-p 0.9 --seed 11 -q";
  auto a = run_tern(cmd), b = run_tern(cmd);
  ASSERT_EQ(a.exit_code, 0) << a.err;
  EXPECT_EQ(a.out, b.out);
  EXPECT_GT(a.out.size(), 10u);
}

TEST(Cli, InfoDescribesTheCheckpoint) {
  auto r = run_tern("info -m '" + kDocs + "' --json");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["architecture"], "LlamaForCausalLM");
  EXPECT_EQ(j["parameters"], reference()["params"]);
  EXPECT_EQ(j["dtypes"]["bf16"], reference()["params"]);
  EXPECT_EQ(j["kv_bytes_per_token_bf16"], 2 * 8 * 4 * 64 * 2);
  EXPECT_EQ(j["weight_bytes"], 2 * j["parameters"].get<int64_t>());
  auto text = run_tern("info -m '" + kDocs + "'");
  ASSERT_EQ(text.exit_code, 0);
  EXPECT_NE(text.out.find("KV per token"), std::string::npos);
}

// A quantized checkpoint counts the parameters of its dense original: packed int32 words hold 32 / bits
// of them, and scales / zero points are bytes, not parameters.
TEST(Cli, InfoCountsAQuantizedCheckpointAtItsLogicalShapes) {
  const int64_t params = reference()["params"].get<int64_t>();
  for (const std::string opts : {"--bits 4 --group 128 --format awq", "--bits 4 --group 64 --format gptq",
                                 "--bits 4 --group 128 --format compressed-tensors", "--bits 8 --w8a8", "--fp8"}) {
    TempDir out;
    auto q = run_tern("quantize -m '" + kDocs + "' -o '" + out.path() + "' " + opts);
    ASSERT_EQ(q.exit_code, 0) << opts << ": " << q.err;
    auto r = run_tern("info -m '" + out.path() + "' --json");
    ASSERT_EQ(r.exit_code, 0) << r.err;
    auto j = nlohmann::json::parse(r.out);
    EXPECT_EQ(j["parameters"].get<int64_t>(), params) << opts << "\n" << r.out;
    int64_t by_format = 0;
    for (const auto& [format, n] : j["dtypes"].items()) by_format += n.get<int64_t>();
    EXPECT_EQ(by_format, params) << opts << "\n" << r.out;
    EXPECT_LT(j["weight_bytes"].get<int64_t>(), 2 * params) << "stored smaller than bf16";
  }
}

TEST(Cli, EvalPplJson) {
  auto r = run_tern("eval ppl -m '" + kDocs + "' -f '" + shared_dir() + "/data/docs-val.txt' --ctx 128 --windows 3 --json");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["tokens"], 3 * 127);
  EXPECT_GT(j["ppl"].get<double>(), 2.0);
  EXPECT_LT(j["ppl"].get<double>(), 30.0);
}

TEST(Cli, SynthWritesALoadableCheckpoint) {
  TempDir dir;
  const std::string out = dir.file("tiny");
  auto s = run_tern("synth --shape tiny-llama -o '" + out + "' --seed 3 --tokenizer '" + kDocs + "'");
  ASSERT_EQ(s.exit_code, 0) << s.err;
  auto info = run_tern("info -m '" + out + "' --json");
  ASSERT_EQ(info.exit_code, 0) << info.err;
  auto j = nlohmann::json::parse(info.out);
  EXPECT_EQ(j["layers"], 2);
  EXPECT_EQ(j["dtypes"].size(), 1u);
  EXPECT_TRUE(j["dtypes"].contains("bf16"));
  auto run = run_tern("run -m '" + out + "' -p 'hello' -n 8 --temp 0 --ignore-eos -q");
  EXPECT_EQ(run.exit_code, 0) << run.err;
  // --dtype f16 stores every tensor in f16 and says so in config.json.
  auto f16 = run_tern("synth --shape tiny-llama --dtype f16 -o '" + dir.file("tiny16") + "'");
  ASSERT_EQ(f16.exit_code, 0) << f16.err;
  auto j16 = nlohmann::json::parse(run_tern("info -m '" + dir.file("tiny16") + "' --json").out);
  EXPECT_TRUE(j16["dtypes"].contains("f16"));
  EXPECT_EQ(j16["dtypes"].size(), 1u);
  // Same seed, same weights.
  auto again = run_tern("synth --shape tiny-llama -o '" + dir.file("tiny2") + "' --seed 3");
  ASSERT_EQ(again.exit_code, 0);
  EXPECT_EQ(*read_text_file(out + "/model.safetensors"), *read_text_file(dir.file("tiny2") + "/model.safetensors"));
}

TEST(Cli, ErrorsAreOneLineAndNonZero) {
  expect_one_line_error(run_tern("run -m /nonexistent/model -p hi"), "/nonexistent/model");
  expect_one_line_error(run_tern("run -m '" + kDocs + "' -p hi --temp -1"), "temperature");
  expect_one_line_error(run_tern("run -m '" + kDocs + "' -p hi --top-p 7"), "top_p");
  expect_one_line_error(run_tern("eval ppl -m '" + kDocs + "' -f /nonexistent.txt"), "/nonexistent.txt");
  expect_one_line_error(run_tern("synth --shape nope -o /tmp/x"), "nope");
  expect_one_line_error(run_tern("info -m '" + shared_dir() + "/data'"), "config.json");
}

TEST(Cli, CorruptCheckpointIsAOneLineErrorNamingTheFile) {
  TempDir dir;
  const std::string src = tiny_arch_dir("llama");
  std::filesystem::copy_file(src + "/config.json", dir.file("config.json"));
  std::string weights = *read_text_file(src + "/model.safetensors");
  write_file(dir.file("model.safetensors"), weights.substr(0, weights.size() / 2));  // truncated
  auto r = run_tern("info -m '" + dir.path() + "'");
  expect_one_line_error(r, "model.safetensors");
  // A config whose shapes disagree with the tensors.
  std::string cfg = *read_text_file(src + "/config.json");
  cfg.replace(cfg.find("\"intermediate_size\": 160"), 24, "\"intermediate_size\": 161");
  write_file(dir.file("config.json"), cfg);
  write_file(dir.file("model.safetensors"), weights);
  expect_one_line_error(run_tern("info -m '" + dir.path() + "'"), "gate_proj");
}

TEST(Cli, BadUsageExitsNonZero) {
  EXPECT_NE(run_tern("").exit_code, 0);
  EXPECT_NE(run_tern("run -p hi").exit_code, 0);  // no model
  EXPECT_NE(run_tern("run -m x -n -5 -p hi").exit_code, 0);
  EXPECT_NE(run_tern("frobnicate").exit_code, 0);
}

}  // namespace
}  // namespace tern::test
