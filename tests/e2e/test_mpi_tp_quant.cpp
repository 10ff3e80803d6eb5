// Tensor parallelism on quantized checkpoints under `mpirun -np 2` (issue 17): docs-llama-28m written
// by `tern quantize` (int8 per channel; int4 group 128, whose intermediate split moves onto down_proj's
// groups) and by `tern gguf quantize` (Q8_0; Q4_K_M, K-quant blocks of 256 in o_proj) gives the single
// process's greedy tokens with --tp 2; a split off o_proj's K-quant blocks is a one-line error; the
// int8 all-reduce (--tp-comm int8) keeps the perplexity within 1% and an unknown value is one line.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <regex>

#include "mpi_quant_checkpoints.h"

namespace tern::test {
namespace {

class MpiTpQuant : public MpiQuantCheckpoints {
 protected:
  static void expect_same_tokens(const std::string& model) { MpiQuantCheckpoints::expect_same_tokens(model, 2, "--tp 2"); }
};

TEST_F(MpiTpQuant, Int8CheckpointGivesTheSingleProcessTokens) { expect_same_tokens(path("int8")); }
TEST_F(MpiTpQuant, Int4CheckpointGivesTheSingleProcessTokens) { expect_same_tokens(path("int4")); }
TEST_F(MpiTpQuant, GgufQ8_0GivesTheSingleProcessTokens) { expect_same_tokens(path("q8_0.gguf")); }
TEST_F(MpiTpQuant, GgufQ4_K_MGivesTheSingleProcessTokens) { expect_same_tokens(path("q4_k_m.gguf")); }

TEST_F(MpiTpQuant, SplitOffKQuantBlocksIsOneLineError) {
  // 4 ranks: 2 of the 8 heads each, 128 of o_proj's 512 columns: half a Q4_K block.
  const CommandResult r = run_tern_mpi(4, "run -m '" + path("q4_k_m.gguf") + "' -p hi -n 2 -t 1 --tp 4");
  EXPECT_NE(r.exit_code, 0);
  // Every rank finds its own split off the blocks; which rank's line comes out first (rank 0's, or
  // another's with its "rank N:" prefix before mpirun stops the job) depends on scheduling.
  const std::regex line(
      R"(tern: error: (rank [1-3]: )?tensor parallelism: layer 0 o_proj \(Q4_K\): the split at columns \[[0-9]+, [0-9]+\) )"
      R"(is not on its 256-column blocks)");
  EXPECT_TRUE(std::regex_search(r.err, line)) << r.err;
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
