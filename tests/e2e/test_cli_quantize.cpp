// tern quantize as a user runs it: a checkpoint in each layout that tern loads back and runs,
// a progress bar on stderr, and one-line errors for bad option combinations.
#include <gtest/gtest.h>

#include <algorithm>
#include <nlohmann/json.hpp>

#include "core/mapped_file.h"
#include "test_support.h"

namespace tern::test {
namespace {

const std::string kDocs = model_dir("docs-llama-28m");

void expect_one_line_error(const CommandResult& r, const std::string& must_mention) {
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("tern: error: "), std::string::npos) << r.err;
  EXPECT_NE(r.err.find(must_mention), std::string::npos) << r.err;
}

TEST(CliQuantize, Int4GptqCheckpointRunsAndKeepsTheGreedyStart) {
  TempDir out;
  auto q = run_tern("quantize -m '" + kDocs + "' -o '" + out.path() + "' --bits 4 --group 128 --format gptq");
  ASSERT_EQ(q.exit_code, 0) << q.err;
  EXPECT_NE(q.err.find("100%"), std::string::npos) << q.err;
  const auto cfg = nlohmann::json::parse(*read_text_file(out.file("config.json")));
  EXPECT_EQ(cfg["quantization_config"]["quant_method"], "gptq");
  EXPECT_EQ(cfg["quantization_config"]["bits"], 4);
  auto base = run_tern("run -m '" + kDocs + "' -p 'The kernel scheduler decides' -n 4 --temp 0 -q");
  auto quant = run_tern("run -m '" + out.path() + "' -p 'The kernel scheduler decides' -n 4 --temp 0 -q");
  ASSERT_EQ(quant.exit_code, 0) << quant.err;
  EXPECT_FALSE(quant.out.empty());
  EXPECT_EQ(quant.out.substr(0, 3), base.out.substr(0, 3)) << "4-bit keeps the first greedy token here";
}

// GPTQ with act-order writes g_idx (desc_act: true), as AutoGPTQ does; tern runs it (columns stored in
// group order, x gathered to match) and keeps the greedy start.
TEST(CliQuantize, ActOrderGptqCheckpointRuns) {
  TempDir out;
  auto q = run_tern("quantize -m '" + kDocs + "' -o '" + out.path() + "' --method gptq --act-order --bits 4 --group 128 "
                    "--calib '" + shared_dir() + "/data/docs-val.txt' --calib-windows 2 --calib-ctx 128");
  ASSERT_EQ(q.exit_code, 0) << q.err;
  const auto cfg = nlohmann::json::parse(*read_text_file(out.file("config.json")));
  EXPECT_EQ(cfg["quantization_config"]["desc_act"], true);
  auto base = run_tern("run -m '" + kDocs + "' -p 'The kernel scheduler decides' -n 4 --temp 0 -q");
  auto quant = run_tern("run -m '" + out.path() + "' -p 'The kernel scheduler decides' -n 4 --temp 0 -q");
  ASSERT_EQ(quant.exit_code, 0) << quant.err;
  EXPECT_EQ(quant.out.substr(0, 3), base.out.substr(0, 3));
}

TEST(CliQuantize, W8A8AndAwqLayoutsLoadBack) {
  for (const std::string opts : {"--bits 8 --w8a8", "--bits 4 --group 64 --format awq", "--fp8"}) {
    TempDir out;
    auto q = run_tern("quantize -m '" + kDocs + "' -o '" + out.path() + "' " + opts);
    ASSERT_EQ(q.exit_code, 0) << opts << ": " << q.err;
    auto r = run_tern("run -m '" + out.path() + "' -p 'Hello' -n 2 --temp 0 -q");
    EXPECT_EQ(r.exit_code, 0) << opts << ": " << r.err;
  }
}

TEST(CliQuantize, BadOptionsAreOneLineErrors) {
  TempDir out;
  const std::string base = "quantize -m '" + kDocs + "' -o '" + out.path() + "' ";
  expect_one_line_error(run_tern(base + "--method awq"), "--calib");
  expect_one_line_error(run_tern(base + "--bits 4 --group 48"), "--group 48");
  expect_one_line_error(run_tern(base + "--bits 8 --group 128"), "per output channel");
  expect_one_line_error(run_tern(base + "--fp8 --format gptq"), "compressed-tensors");
  expect_one_line_error(run_tern(base + "--int8-modules 're:no_such_layer'"), "matches no linear layer");
  EXPECT_NE(run_tern(base + "--bits 3").exit_code, 0);
  expect_one_line_error(run_tern(base + "--sequential layer"), "--sequential");  // rtn: nothing to calibrate
  expect_one_line_error(run_tern(base + "--method awq --sequential input --calib x.txt"), "--sequential");
  expect_one_line_error(run_tern(base + "--method gptq --sq-alpha-search --calib x.txt"), "--sq-alpha-search");
  EXPECT_NE(run_tern(base + "--method gptq --sequential sideways").exit_code, 0);
  expect_one_line_error(run_tern("quantize -m /nonexistent -o '" + out.path() + "'"), "/nonexistent");
}

}  // namespace
}  // namespace tern::test
