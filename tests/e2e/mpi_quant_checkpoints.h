// The quantized docs-llama-28m checkpoints the MPI e2e suites run on (issue 17): `tern quantize` int8 per
// channel and int4 group 128, `tern gguf quantize` Q8_0 and Q4_K_M, written once per suite; and the one
// comparison both the tensor- and the pipeline-parallel suites make: greedy tokens of `tern run` on one
// process equal those of `np` ranks with a layout.
#pragma once

#include <gtest/gtest.h>

#include <string>
#include <utility>

#include "model_test_util.h"
#include "mpi_test_util.h"

namespace tern::test {

class MpiQuantCheckpoints : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new TempDir();
    errors_.clear();
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
  static void TearDownTestSuite() {
    delete dir_;
    dir_ = nullptr;
  }
  void SetUp() override {
    if (!have_mpirun()) GTEST_SKIP() << "built without MPI (TERN_MPI)";
    ASSERT_TRUE(errors_.empty()) << errors_;
  }
  // "int8", "int4", "q8_0.gguf" or "q4_k_m.gguf".
  static std::string path(const std::string& name) { return dir_->file(name); }

  // Greedy tokens of one process against `np` ranks with `layout` (e.g. "--tp 2"); the parallel run's
  // stderr goes to *par_err for checks of its own.
  static void expect_same_tokens(const std::string& model, int np, const std::string& layout,
                                 std::string* par_err = nullptr) {
    const std::string args = "run -m '" + model + "' -p 'The configuration file' -n 32 --temp 0 --ignore-eos -q -t 1";
    const CommandResult one = run_tern(args);
    ASSERT_EQ(one.exit_code, 0) << one.err;
    const CommandResult par = run_tern_mpi(np, args + " " + layout);
    ASSERT_EQ(par.exit_code, 0) << par.err << par.out;
    EXPECT_FALSE(one.out.empty());
    EXPECT_EQ(par.out, one.out) << layout;
    if (par_err) *par_err = par.err;
  }

  inline static TempDir* dir_ = nullptr;
  inline static std::string errors_;
};

}  // namespace tern::test
