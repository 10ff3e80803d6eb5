// Pipeline parallelism on quantized checkpoints and GGUF files under mpirun (issue 17): docs-llama-28m
// written by `tern quantize` (int8 per channel, int4 group 128) and `tern gguf quantize` (Q8_0,
// Q4_K_M) gives the single process's greedy tokens with --pp 2 (each stage keeps its layers: GGUF
// blocks stay views into the mmap) and, for the GGUF files, with --tp 2 --pp 2 on 4 ranks.
#include <gtest/gtest.h>

#include "model_test_util.h"
#include "mpi_test_util.h"

namespace tern::test {
namespace {

const std::string kRunArgs = " -p 'The configuration file' -n 32 --temp 0 --ignore-eos -q -t 1";

class MpiPpQuant : public ::testing::Test {
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

  static void expect_same_tokens(const std::string& model, int np, const std::string& layout) {
    const std::string args = "run -m '" + model + "'" + kRunArgs;
    const CommandResult one = run_tern(args);
    ASSERT_EQ(one.exit_code, 0) << one.err;
    const CommandResult par = run_tern_mpi(np, args + " " + layout);
    ASSERT_EQ(par.exit_code, 0) << par.err << par.out;
    EXPECT_FALSE(one.out.empty());
    EXPECT_EQ(par.out, one.out) << layout;
    // The stages split by bytes (the split depends on the format's layer and head bytes): the last
    // stage ends at layer 7, the first starts at 0.
    EXPECT_NE(par.err.find("(layers 0.."), std::string::npos) << par.err;
    EXPECT_NE(par.err.find("..7)"), std::string::npos) << par.err;
  }

  static TempDir* dir_;
  static std::string errors_;
};
TempDir* MpiPpQuant::dir_ = nullptr;
std::string MpiPpQuant::errors_;

TEST_F(MpiPpQuant, Int8Checkpoint) { expect_same_tokens(path("int8"), 2, "--pp 2"); }
TEST_F(MpiPpQuant, Int4Checkpoint) { expect_same_tokens(path("int4"), 2, "--pp 2"); }
TEST_F(MpiPpQuant, GgufQ8_0) { expect_same_tokens(path("q8_0.gguf"), 2, "--pp 2"); }
TEST_F(MpiPpQuant, GgufQ4_K_M) { expect_same_tokens(path("q4_k_m.gguf"), 2, "--pp 2"); }
TEST_F(MpiPpQuant, GgufQ8_0TpTimesPp) { expect_same_tokens(path("q8_0.gguf"), 4, "--tp 2 --pp 2"); }

TEST_F(MpiPpQuant, GgufUnderExpertParallelismIsStillOneLine) {
  const CommandResult r = run_tern_mpi(2, "run -m '" + path("q8_0.gguf") + "' -p hi -n 2 -t 1 --ep 2");
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("expert parallelism supports safetensors checkpoints only, not GGUF"), std::string::npos) << r.err;
}

}  // namespace
}  // namespace tern::test
