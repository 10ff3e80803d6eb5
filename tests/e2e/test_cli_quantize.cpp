// tern quantize as a user runs it: a checkpoint in each layout that tern loads back and runs,
// a progress bar on stderr, and one-line errors for bad option combinations.
#include <gtest/gtest.h>

#include <algorithm>
#include <nlohmann/json.hpp>

#include "core/mapped_file.h"
#include "formats/quant/quant_config.h"
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
                    "--format gptq --sym --sequential off --no-mse-clip --calib '" + shared_dir() + "/data/docs-val.txt' --calib-windows 2 --calib-ctx 128");
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

std::string recipe_line(const std::string& err) {
  const size_t at = err.find("[tern] recipe: ");
  return at == std::string::npos ? "" : err.substr(at, err.find('\n', at) - at);
}

// A method and --bits alone run the measured recipe (compress/recipe.h): int4 g128 with zero points, the
// tied embedding, every v_proj, down_proj in llama.cpp's "more bits" layers (0, 3, 6, 7 of 8) and layer 0's
// o_proj at int8, MSE-clipped ranges, all in compressed-tensors config groups; the recipe line says so.
TEST(CliQuantize, DefaultsWriteTheMixedPrecisionRecipe) {
  TempDir out;
  auto q = run_tern("quantize -m '" + kDocs + "' -o '" + out.path() + "'");
  ASSERT_EQ(q.exit_code, 0) << q.err;
  const std::string line = recipe_line(q.err);
  for (const char* part : {"rtn int4 g128 asym", "MSE clip", "int8 embedding", "13 linears int8", "--no-mixed", "--sym",
                           "--no-mse-clip"})
    EXPECT_NE(line.find(part), std::string::npos) << part << " in: " << line;
  auto qc = load_quant_config(out.path());
  ASSERT_TRUE(qc.is_ok()) << qc.status().message();
  EXPECT_EQ(qc->method, QuantMethod::CompressedTensors);
  ASSERT_EQ(qc->schemes.size(), 2u);
  EXPECT_EQ(qc->schemes[0].bits, 4);
  EXPECT_EQ(qc->schemes[0].group, 128);
  EXPECT_FALSE(qc->schemes[0].symmetric);
  EXPECT_EQ(qc->schemes[1].bits, 8);
  std::vector<std::string> high = qc->schemes[1].targets, want = {"model.embed_tokens"};
  for (int l = 0; l < 8; ++l) want.push_back("model.layers." + std::to_string(l) + ".self_attn.v_proj");
  for (int l : {0, 3, 6, 7}) want.push_back("model.layers." + std::to_string(l) + ".mlp.down_proj");
  want.push_back("model.layers.0.self_attn.o_proj");
  std::sort(high.begin(), high.end());
  std::sort(want.begin(), want.end());
  EXPECT_EQ(high, want);
  auto base = run_tern("run -m '" + kDocs + "' -p 'The kernel scheduler decides' -n 4 --temp 0 -q");
  auto quant = run_tern("run -m '" + out.path() + "' -p 'The kernel scheduler decides' -n 4 --temp 0 -q");
  ASSERT_EQ(quant.exit_code, 0) << quant.err;
  EXPECT_EQ(quant.out.substr(0, 3), base.out.substr(0, 3));
}

// Each default part has its switch: --no-mixed (uniform int4, the AutoGPTQ layout), --sym, --no-mse-clip;
// an explicit --format that holds one scheme drops the mixed part with a note.
TEST(CliQuantize, RecipeSwitchesTurnPartsOff) {
  {
    TempDir out;
    auto q = run_tern("quantize -m '" + kDocs + "' -o '" + out.path() + "' --no-mixed --sym --no-mse-clip");
    ASSERT_EQ(q.exit_code, 0) << q.err;
    const std::string line = recipe_line(q.err);
    EXPECT_NE(line.find("rtn int4 g128 sym"), std::string::npos) << line;
    EXPECT_EQ(line.find("MSE clip"), std::string::npos) << line;
    EXPECT_EQ(line.find("int8"), std::string::npos) << line;
    auto qc = load_quant_config(out.path());
    ASSERT_TRUE(qc.is_ok()) << qc.status().message();
    EXPECT_EQ(qc->method, QuantMethod::Gptq);
    EXPECT_TRUE(qc->symmetric);
    EXPECT_TRUE(qc->schemes.empty());
  }
  {
    TempDir out;
    auto q = run_tern("quantize -m '" + kDocs + "' -o '" + out.path() + "' --format awq --embed-bits 16");
    ASSERT_EQ(q.exit_code, 0) << q.err;
    EXPECT_NE(recipe_line(q.err).find("--format awq holds one scheme"), std::string::npos) << q.err;
    auto qc = load_quant_config(out.path());
    ASSERT_TRUE(qc.is_ok()) << qc.status().message();
    EXPECT_EQ(qc->method, QuantMethod::Awq);
    EXPECT_FALSE(qc->symmetric);
  }
  {
    TempDir out;  // --asym is honoured at 8 bits too (int8 weight-only with zero points)
    auto q = run_tern("quantize -m '" + kDocs + "' -o '" + out.path() + "' --bits 8 --asym");
    ASSERT_EQ(q.exit_code, 0) << q.err;
    EXPECT_NE(recipe_line(q.err).find("rtn int8 per channel asym"), std::string::npos) << q.err;
    auto qc = load_quant_config(out.path());
    ASSERT_TRUE(qc.is_ok()) << qc.status().message();
    EXPECT_FALSE(qc->symmetric);
  }
  {
    TempDir out;  // a list of one's own replaces the default int8 set; the embedding stays bf16
    auto q = run_tern("quantize -m '" + kDocs + "' -o '" + out.path() + "' --int8-modules layers.1.mlp.down_proj --embed-bits 16");
    ASSERT_EQ(q.exit_code, 0) << q.err;
    auto qc = load_quant_config(out.path());
    ASSERT_TRUE(qc.is_ok()) << qc.status().message();
    ASSERT_EQ(qc->schemes.size(), 2u);
    EXPECT_EQ(qc->schemes[1].targets, std::vector<std::string>{"model.layers.1.mlp.down_proj"});
  }
}

// GPTQ's default is sequential per layer, AWQ's rounds with GPTQ, SmoothQuant's searches α (printed, each
// switchable); smoothquant needs no --bits 8. The switches are checked on the recipe line, which is
// printed before the calibration text is read (a missing file then stops the run cheaply).
TEST(CliQuantize, CalibratedMethodsRunTheirRecipes) {
  const std::string calib = "--calib '" + shared_dir() + "/data/wiki.test.raw' --calib-windows 2 --calib-ctx 64 ";
  TempDir a, b, c;  // calibration on WikiText, a few short windows: the recipe, not its quality
  auto g = run_tern("quantize -m '" + kDocs + "' -o '" + a.path() + "' --method gptq " + calib);
  ASSERT_EQ(g.exit_code, 0) << g.err;
  EXPECT_NE(recipe_line(g.err).find("GPTQ sequential per layer, MSE clip"), std::string::npos) << g.err;
  EXPECT_NE(recipe_line(g.err).find("--sequential off"), std::string::npos) << g.err;
  auto s = run_tern("quantize -m '" + kDocs + "' -o '" + b.path() + "' --method smoothquant " + calib);
  ASSERT_EQ(s.exit_code, 0) << s.err;
  EXPECT_NE(recipe_line(s.err).find("W8A8 int8 per channel, α searched per layer"), std::string::npos) << s.err;
  auto w = run_tern("quantize -m '" + kDocs + "' -o '" + c.path() + "' --method awq " + calib);
  ASSERT_EQ(w.exit_code, 0) << w.err;
  EXPECT_NE(recipe_line(w.err).find("AWQ scales + GPTQ rounding, MSE clip"), std::string::npos) << w.err;

  const std::string missing = " --calib '" + a.file("no-such-calib.txt") + "'";
  auto line_of = [&](const std::string& args) {
    auto r = run_tern("quantize -m '" + kDocs + "' -o '" + a.file("x") + "' " + args + missing);
    EXPECT_EQ(r.exit_code, 1) << args;
    EXPECT_NE(r.err.find("no-such-calib.txt"), std::string::npos) << r.err;
    return recipe_line(r.err);
  };
  const std::string g0 = line_of("--method gptq --sequential off");
  EXPECT_EQ(g0.find("sequential"), std::string::npos) << g0;
  EXPECT_NE(g0.find("128 calibration windows"), std::string::npos) << g0;
  EXPECT_NE(line_of("--method gptq --sequential input").find("GPTQ sequential per linear input"), std::string::npos);
  const std::string s0 = line_of("--method smoothquant --sq-alpha 0.65");
  EXPECT_NE(s0.find("α 0.65"), std::string::npos) << s0;
  EXPECT_NE(line_of("--method smoothquant --no-sq-alpha-search").find("α 0.5"), std::string::npos);
  const std::string w0 = line_of("--method awq --no-awq-gptq");
  EXPECT_NE(w0.find("AWQ scales + clipping search"), std::string::npos) << w0;
  EXPECT_EQ(w0.find("MSE clip"), std::string::npos) << w0;
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
  expect_one_line_error(run_tern(base + "--awq-gptq"), "--awq-gptq applies to --method awq");
  expect_one_line_error(run_tern(base + "--format gptq --int8-modules auto"), "compressed-tensors");
  expect_one_line_error(run_tern(base + "--bits 8 --embed-bits 8"), "4-bit checkpoints only");
  expect_one_line_error(run_tern(base + "--method awq --no-awq-gptq --mse-clip --calib x.txt"), "--awq-gptq");
  expect_one_line_error(run_tern(base + "--method smoothquant --mse-clip --calib x.txt"), "--mse-clip");
  expect_one_line_error(run_tern(base + "--method smoothquant --bits 4 --calib x.txt"), "W8A8 needs --bits 8");
  EXPECT_NE(run_tern(base + "--no-mixed --embed-bits 8").exit_code, 0);
  EXPECT_NE(run_tern(base + "--method gptq --sequential sideways").exit_code, 0);
  expect_one_line_error(run_tern("quantize -m /nonexistent -o '" + out.path() + "'"), "/nonexistent");
}

// -m goes through the one model-path resolver: config.json names its directory; a GGUF file is refused by
// name (re-quantizing GGUF is not supported), never "FILE.gguf/config.json: Not a directory".
TEST(CliQuantize, ModelPathFormsAndGgufInput) {
  TempDir out;
  const std::string gguf = out.path() + "/docs.q8_0.gguf";
  ASSERT_EQ(run_tern("quantize -m '" + kDocs + "' -o '" + gguf + "' --format gguf --type Q8_0 --pure").exit_code, 0);
  expect_one_line_error(run_tern("quantize -m '" + gguf + "' -o '" + out.path() + "/q'"), "re-quantizing a GGUF");
  const auto r = run_tern("quantize -m '" + kDocs + "/config.json' -o '" + out.path() + "/q.gguf' --format gguf "
                          "--type Q8_0 --pure");
  EXPECT_EQ(r.exit_code, 0) << r.err;
}

}  // namespace
}  // namespace tern::test
