// Tensor parallelism on quantized checkpoints under `mpirun -np 2` (issue 17): docs-llama-28m written
// by `tern quantize` (int8 per channel; int4 group 128, whose intermediate split moves onto down_proj's
// groups) and by `tern gguf quantize` (Q8_0; Q4_K_M, K-quant blocks of 256 in o_proj) gives the single
// process's greedy tokens with --tp 2; a split off o_proj's K-quant blocks is a one-line error; the
// int8 all-reduce (--tp-comm int8) keeps the perplexity within 1% and an unknown value is one line.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "model_test_util.h"
#include "mpi_test_util.h"

namespace tern::test {
namespace {

const std::string kRunArgs = " -p 'The configuration file' -n 32 --temp 0 --ignore-eos -q -t 1";

// The quantized checkpoints, written once for the whole suite.
class MpiTpQuant : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new TempDir();
    const std::string docs = model_dir("docs-llama-28m");
    for (const auto& [name, args] :
         {std::pair<std::string, std::string>{"int8", "quantize -m '" + docs + "' -o '" + dir_->file("int8") + "' --bits 8"},
          {"int4", "quantize -m '" + docs + "' -o '" + dir_->file("int4") + "' --bits 4 --group 128"},
          {"q8_0", "gguf quantize -q -m '" + docs + "' -o '" + dir_->file("q8_0.gguf") + "' --type Q8_0"},
          {"q4_k_m", "gguf quantize -q -m '" + docs + "' -o '" + dir_->file("q4_k_m.gguf") + "' --type Q4_K_M"}}) {
      const CommandResult r = run_tern(args);
      if (r.exit_code != 0) errors_ += name + ": " + r.err + "\n";
    }
  }
  static void TearDownTestSuite() { delete dir_; }
  void SetUp() override {
    if (!have_mpirun()) GTEST_SKIP() << "built without MPI (TERN_MPI)";
    ASSERT_TRUE(errors_.empty()) << errors_;
  }
  static std::string path(const std::string& name) { return dir_->file(name); }

  static void expect_same_tokens(const std::string& model) {
    const std::string args = "run -m '" + model + "'" + kRunArgs;
    const CommandResult one = run_tern(args);
    ASSERT_EQ(one.exit_code, 0) << one.err;
    const CommandResult two = run_tern_mpi(2, args + " --tp 2");
    ASSERT_EQ(two.exit_code, 0) << two.err << two.out;
    EXPECT_FALSE(one.out.empty());
    EXPECT_EQ(two.out, one.out);
  }

  static TempDir* dir_;
  static std::string errors_;
};
TempDir* MpiTpQuant::dir_ = nullptr;
std::string MpiTpQuant::errors_;

TEST_F(MpiTpQuant, Int8CheckpointGivesTheSingleProcessTokens) { expect_same_tokens(path("int8")); }
TEST_F(MpiTpQuant, Int4CheckpointGivesTheSingleProcessTokens) { expect_same_tokens(path("int4")); }
TEST_F(MpiTpQuant, GgufQ8_0GivesTheSingleProcessTokens) { expect_same_tokens(path("q8_0.gguf")); }
TEST_F(MpiTpQuant, GgufQ4_K_MGivesTheSingleProcessTokens) { expect_same_tokens(path("q4_k_m.gguf")); }

TEST_F(MpiTpQuant, SplitOffKQuantBlocksIsOneLineError) {
  // 4 ranks: 2 of the 8 heads each, 128 of o_proj's 512 columns: half a Q4_K block.
  const CommandResult r = run_tern_mpi(4, "run -m '" + path("q4_k_m.gguf") + "' -p hi -n 2 -t 1 --tp 4");
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("tern: error: tensor parallelism: layer 0 o_proj (Q4_K): the split at columns [0, 128) is not "
                       "on its 256-column blocks"),
            std::string::npos)
      << r.err;
}

TEST_F(MpiTpQuant, Int8AllReduceKeepsThePerplexity) {
  const std::string args = "eval ppl -m '" + model_dir("docs-llama-28m") + "' -f '" + shared_dir() +
                           "/data/docs-val.txt' --ctx 128 --windows 4 --json -t 1 --tp 2";
  const CommandResult f32 = run_tern_mpi(2, args);
  ASSERT_EQ(f32.exit_code, 0) << f32.err;
  const CommandResult i8 = run_tern_mpi(2, args + " --tp-comm int8");
  ASSERT_EQ(i8.exit_code, 0) << i8.err;
  const auto a = nlohmann::json::parse(f32.out), b = nlohmann::json::parse(i8.out);
  EXPECT_NE(b["ppl"].get<double>(), a["ppl"].get<double>());  // it did round
  EXPECT_NEAR(b["ppl"].get<double>(), a["ppl"].get<double>(), 0.01 * a["ppl"].get<double>());
}

TEST_F(MpiTpQuant, UnknownTpCommIsOneLineError) {
  const CommandResult r = run_tern_mpi(2, "run -m '" + model_dir("docs-llama-28m") + "' -p hi -n 2 -t 1 --tp 2 --tp-comm int4");
  EXPECT_NE(r.exit_code, 0);
  const std::string line = "tern: error: --tp-comm 'int4' is not one of auto, f32, int8";
  EXPECT_NE(r.err.find(line), std::string::npos) << r.err;
  EXPECT_EQ(r.err.find(line), r.err.rfind(line));  // once: rank 0 says it
  const CommandResult one = run_tern("run -m '" + model_dir("docs-llama-28m") + "' -p hi -n 2 -t 1 --tp-comm int8");
  EXPECT_EQ(one.exit_code, 1);
  EXPECT_NE(one.err.find("--tp-comm int8 compresses the tensor-parallel all-reduce: it needs --tp 2 or more"),
            std::string::npos)
      << one.err;
}

}  // namespace
}  // namespace tern::test
