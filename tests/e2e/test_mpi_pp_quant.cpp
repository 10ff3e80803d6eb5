// Pipeline parallelism on quantized checkpoints and GGUF files under mpirun (issue 17): docs-llama-28m
// written by `tern quantize` (int8 per channel, int4 group 128) and `tern gguf quantize` (Q8_0,
// Q4_K_M) gives the single process's greedy tokens with --pp 2 (each stage keeps its layers: GGUF
// blocks stay views into the mmap) and, for the GGUF files, with --tp 2 --pp 2 on 4 ranks.
#include <gtest/gtest.h>

#include "mpi_quant_checkpoints.h"

namespace tern::test {
namespace {

class MpiPpQuant : public MpiQuantCheckpoints {
 protected:
  static void expect_same_tokens(const std::string& model, int np, const std::string& layout) {
    std::string err;
    MpiQuantCheckpoints::expect_same_tokens(model, np, layout, &err);
    // The stages split by bytes (the split depends on the format's layer and head bytes): the last
    // stage ends at layer 7, the first starts at 0.
    EXPECT_NE(err.find("(layers 0.."), std::string::npos) << err;
    EXPECT_NE(err.find("..7)"), std::string::npos) << err;
  }
};

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
