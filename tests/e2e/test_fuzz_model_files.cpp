// Mutated model files never crash or hang the loaders (issue 14: "2,400 mutated model files: 0 crashes, 0 hangs").
// A CI-sized run with a fixed seed; bench/fuzz_model_files runs the full 2,400 (docs/tokenizer.md).
#include <gtest/gtest.h>

#include "fuzz_model_files.h"
#include "test_support.h"

namespace tern::test {
namespace {

TEST(FuzzModelFiles, MutatedFilesGiveErrorsNotCrashesOrHangs) {
  TempDir dir;
  fuzz::Options o;
  o.shared_dir = shared_dir();
  o.work_dir = dir.path();
  o.seed = 14;
  o.cases = 80;
  o.timeout_s = 300;  // a hang, not a slow machine: a case takes well under a second unloaded
  const fuzz::Report rep = fuzz::run(o);
  EXPECT_EQ(rep.cases, 80);
  EXPECT_EQ(rep.crashes, 0);
  EXPECT_EQ(rep.hangs, 0);
  for (const std::string& f : rep.failures) ADD_FAILURE() << f;
  // The mutations reach the checks: most cases are refused somewhere, a few still load.
  EXPECT_GT(rep.clean_errors, 20);
}

}  // namespace
}  // namespace tern::test
