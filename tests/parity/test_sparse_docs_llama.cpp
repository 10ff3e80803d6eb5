// End to end: docs-llama-28m pruned by magnitude (50% of every row, and 2:4), stored sparse by
// `tern sparsify`, gives the same greedy tokens and nearly the same logits as the dense pruned
// checkpoint it came from (the values are the same bf16 numbers: only summation order differs), and
// the 2:4 int8 form stays close to them. Runs through the CLI, prefill (panel GEMM) and decode (GEMV).
#include <gtest/gtest.h>

#include <cmath>

#include "model_test_util.h"
#include "sparse_test_util.h"
#include "test_support.h"
#include "text/tokenizer/tokenizer.h"

namespace tern::test {
namespace {

ExecContext& host_ctx() {
  static ThreadPool pool(2);
  static ExecContext c(pool, CpuFeatures::detect());
  return c;
}

std::vector<int32_t> prompt_ids() {
  auto tok = Tokenizer::load(model_dir("docs-llama-28m")).value();
  return tok.encode("The configuration file is read at startup. To change the default port, edit", true);
}

float max_abs_diff(const std::vector<float>& a, const std::vector<float>& b) {
  float d = a.size() == b.size() && !a.empty() ? 0.f : INFINITY;
  for (size_t i = 0; i < a.size() && i < b.size(); ++i) d = std::max(d, std::fabs(a[i] - b[i]));
  return d;
}

void check_pattern(PrunePattern pattern, const char* flag) {
  TempDir tmp;
  write_pruned_dense(model_dir("docs-llama-28m"), tmp.file("dense"), pattern);
  const CommandResult r = run_tern("sparsify -m " + tmp.file("dense") + " -o " + tmp.file("sparse") + " " + flag);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.err.find(pattern == PrunePattern::Half ? "unstructured bf16" : "2:4 bf16"), std::string::npos) << r.err;
  auto dense = Model::load(tmp.file("dense")).value();
  auto sparse = Model::load(tmp.file("sparse"));
  ASSERT_TRUE(sparse.is_ok()) << sparse.status().message();
  const auto ids = prompt_ids();
  const auto ld = all_logits(*dense, host_ctx(), ids), ls = all_logits(**sparse, host_ctx(), ids);
  EXPECT_LT(max_abs_diff(ld, ls), 2e-3f);
  const auto gd = greedy(*dense, host_ctx(), ids, 32);
  ASSERT_EQ(gd.size(), 32u);
  EXPECT_EQ(gd, greedy(**sparse, host_ctx(), ids, 32));

  if (pattern != PrunePattern::TwoFour) return;
  const CommandResult q = run_tern("sparsify -m " + tmp.file("dense") + " -o " + tmp.file("int8") + " --int8");
  ASSERT_EQ(q.exit_code, 0) << q.err;
  auto int8 = Model::load(tmp.file("int8"));
  ASSERT_TRUE(int8.is_ok()) << int8.status().message();
  // Per-channel int8 of the kept weights: the last position's logits within a small margin, and the
  // greedy continuation agrees for its first tokens.
  const auto li = all_logits(**int8, host_ctx(), ids);
  const size_t v = size_t(dense->config().vocab_size), last = li.size() - v;
  float d = 0.f;
  for (size_t i = 0; i < v; ++i) d = std::max(d, std::fabs(li[last + i] - ld[last + i]));
  EXPECT_LT(d, 0.5f);
  const auto gi = greedy(**int8, host_ctx(), ids, 8);
  EXPECT_EQ(std::vector<int32_t>(gd.begin(), gd.begin() + 8), gi);
}

TEST(SparseDocsLlama, UnstructuredHalfSameTokens) { check_pattern(PrunePattern::Half, ""); }
TEST(SparseDocsLlama, TwoFourSameTokensAndInt8Close) { check_pattern(PrunePattern::TwoFour, "--pattern 2:4"); }

}  // namespace
}  // namespace tern::test
