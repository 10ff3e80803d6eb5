// tern prune as a user runs it on docs-llama-28m: each method writes a dense checkpoint with the zeros
// in place that tern evaluates, structured pruning writes a smaller model that loads and generates,
// and every bad input is one "tern: error:" line with exit code 1.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <nlohmann/json.hpp>

#include "core/mapped_file.h"
#include "test_support.h"

namespace tern::test {
namespace {

const std::string kDocs = model_dir("docs-llama-28m");

// A short calibration file: the start of docs-val's first half (the tests evaluate elsewhere).
class CliPrune : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new TempDir();
    auto text = read_text_file(shared_dir() + "/data/docs-val.txt");
    ASSERT_TRUE(text.is_ok());
    write_file(dir_->file("calib.txt"), text->substr(0, 6000));
    write_file(dir_->file("empty.txt"), "");
  }
  static void TearDownTestSuite() { delete dir_; }
  static std::string calib() { return " --calib '" + dir_->file("calib.txt") + "' --calib-ctx 128 --calib-windows 2"; }
  static inline TempDir* dir_ = nullptr;
};

double ppl_of(const std::string& model) {
  auto r = run_tern("eval ppl -m '" + model + "' -f '" + shared_dir() + "/data/docs-val.txt' --ctx 128 --windows 2 --json");
  EXPECT_EQ(r.exit_code, 0) << r.err;
  if (r.exit_code != 0) return NAN;
  return nlohmann::json::parse(r.out)["ppl"].get<double>();
}

TEST_F(CliPrune, EachMethodWritesACheckpointThatEvaluates) {
  const double base = ppl_of(kDocs);
  for (const std::string& args : std::vector<std::string>{"--method magnitude --sparsity 0.5", "--method wanda --sparsity 0.5" + calib(),
                                 "--method sparsegpt --pattern 2:4" + calib(), "--method wanda --pattern 4:8" + calib(),
                                 "--method ria --pattern 2:4" + calib(), "--method magnitude --sparsity 0.5 --group row"}) {
    TempDir out;
    auto r = run_tern("prune -m '" + kDocs + "' -o '" + out.path() + "' " + args);
    ASSERT_EQ(r.exit_code, 0) << args << ": " << r.err;
    EXPECT_NE(r.err.find("100%"), std::string::npos) << r.err;
    EXPECT_NE(r.err.find("50.00%"), std::string::npos) << "half of the linear weights are zero: " << r.err;
    const auto in = nlohmann::json::parse(*read_text_file(kDocs + "/config.json"));
    const auto cfg = nlohmann::json::parse(*read_text_file(out.file("config.json")));
    EXPECT_EQ(cfg, in) << "same shapes, same config";
    EXPECT_TRUE(read_text_file(out.file("tokenizer.json")).is_ok());
    const double ppl = ppl_of(out.path());
    EXPECT_TRUE(std::isfinite(ppl) && ppl > base) << args << ": " << ppl << " vs " << base;
  }
}

// The LM head pruned with the linears and stored sparse with them (2:4 int8): the head is untied, the
// sparse checkpoint evaluates, and sparsify --sparse-lm-head on a tied checkpoint says how to get a head.
TEST_F(CliPrune, LmHeadPrunedAndStoredSparse) {
  TempDir out;
  auto r = run_tern("prune -m '" + kDocs + "' -o '" + out.file("pruned") + "' --method magnitude --pattern 2:4 --prune-lm-head");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.err.find("the LM head pruned too"), std::string::npos) << r.err;
  EXPECT_FALSE(nlohmann::json::parse(*read_text_file(out.file("pruned/config.json")))["tie_word_embeddings"].get<bool>());
  r = run_tern("sparsify -m '" + out.file("pruned") + "' -o '" + out.file("sparse") + "' --int8 --sparse-lm-head");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const double ppl = ppl_of(out.file("sparse"));
  EXPECT_TRUE(std::isfinite(ppl) && ppl > ppl_of(kDocs)) << ppl;
  r = run_tern("sparsify -m '" + kDocs + "' -o '" + out.file("x") + "' --sparse-lm-head");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("tern prune --prune-lm-head"), std::string::npos) << r.err;
}

TEST_F(CliPrune, StructuredOutputsLoadAndGenerate) {
  struct Case {
    std::string args;
    const char* key;
    int value;
  };
  for (const Case& c : {Case{"--structured heads,channels --ratio 0.25", "num_key_value_heads", 3},
                        Case{"--structured channels --ratio 0.25", "intermediate_size", 1056},
                        Case{"--structured layers --ratio 0.25", "num_hidden_layers", 6}}) {
    TempDir out;
    auto r = run_tern("prune -m '" + kDocs + "' -o '" + out.path() + "' " + c.args + calib());
    ASSERT_EQ(r.exit_code, 0) << c.args << ": " << r.err;
    const auto cfg = nlohmann::json::parse(*read_text_file(out.file("config.json")));
    EXPECT_EQ(cfg[c.key], c.value) << c.args;
    auto gen = run_tern("run -m '" + out.path() + "' -p 'The kernel scheduler decides' -n 4 --temp 0 -q");
    ASSERT_EQ(gen.exit_code, 0) << c.args << ": " << gen.err;
    EXPECT_FALSE(gen.out.empty());
  }
}

TEST_F(CliPrune, BadInputIsOneLineError) {
  struct Case {
    std::string args, mention;
  };
  const std::string missing = dir_->file("no-such-file.txt"), empty = dir_->file("empty.txt");
  for (const Case& c : std::vector<Case>{
           {"--method magnitude --sparsity 0", "--sparsity"},
           {"--method magnitude --sparsity 1", "--sparsity"},
           {"--method magnitude --sparsity 1.5", "--sparsity"},
           {"--method magnitude --sparsity -0.2", "--sparsity"},
           {"--method magnitude --pattern 4:4", "--pattern"},
           {"--method magnitude --pattern 5:4", "--pattern"},
           {"--method magnitude --pattern 2:3", "not a multiple of 3"},
           {"--method magnitude --pattern two:four", "--pattern"},
           {"--method random --sparsity 0.5", "random"},
           {"--method magnitude --sparsity 0.5 --pattern 2:4", "not both"},
           {"--method magnitude", "--sparsity"},
           {"--method wanda --sparsity 0.5", "--calib"},
           {"--method magnitude --sparsity 0.5 --calib '" + empty + "'", "--calib applies"},
           {"--method sparsegpt --sparsity 0.5 --calib '" + missing + "'", "no-such-file.txt"},
           {"--method sparsegpt --sparsity 0.5 --calib '" + empty + "'", "empty"},
           {"--structured heads --ratio 0 --calib '" + empty + "'", "--ratio"},
           {"--structured heads --ratio 1.2 --calib '" + empty + "'", "--ratio"},
           {"--structured layers --ratio 0.01 --calib '" + empty + "'", "num_hidden_layers"},
           {"--structured neurons --ratio 0.5", "neurons"},
           {"--structured heads --ratio 0.5 --calib '" + missing + "'", "no-such-file.txt"},
           {"--structured heads --ratio 0.5 --calib '" + empty + "'", "empty"},
           {"--structured heads", "--ratio"},
           {"--ratio 0.5 --sparsity 0.5", "--ratio applies to --structured"},
           {"--method magnitude --pattern 2:4 --group layer", "--group applies to --sparsity"},
           {"--method magnitude --sparsity 0.5 --group column", "column"},
           {"--method sparsegpt --pattern 2:4 --group layer --calib '" + empty + "'", "--group applies"},
           {"--method magnitude --sparsity 0.5 --owl", "--owl applies"},
           {"--method wanda --pattern 2:4 --owl", "--owl sets"},
           {"--method wanda --sparsity 0.5 --owl --group layer", "--group row"},
           {"--method wanda --sparsity 0.5 --owl-m 3", "--owl-m"},
           {"--method wanda --sparsity 0.5 --owl --owl-lambda 0.6", "--owl-lambda"},
           {"--method wanda --sparsity 0.5 --owl --owl-m 0", "--owl-m"},
           {"--method wanda --sparsity 0.5 --prune-lm-head", "--prune-lm-head"},
           {"--structured heads --ratio 0.5 --owl", "--owl"},
       }) {
    TempDir out;
    auto r = run_tern("prune -m '" + kDocs + "' -o '" + out.path() + "' " + c.args);
    EXPECT_EQ(r.exit_code, 1) << c.args;
    EXPECT_EQ(r.err.rfind("tern: error: ", 0), size_t(0)) << c.args << ": " << r.err;
    EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << c.args << ": " << r.err;
    EXPECT_NE(r.err.find(c.mention), std::string::npos) << c.args << ": " << r.err;
  }
}

}  // namespace
}  // namespace tern::test
