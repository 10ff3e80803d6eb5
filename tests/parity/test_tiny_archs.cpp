// Each architecture against transformers' fp32 outputs on ../shared/models/tiny-archs/<arch>.
//
// Tolerance: the weights are fp32 and every op accumulates in fp32 (HF does too), so the only
// differences are summation order and exp/rsqrt rounding: ~1e-6 relative per op, a few 1e-6
// absolute on logits of magnitude ~2 after two layers. The bound is 1e-3; we assert 1e-4,
// an order tighter, so a real bug (a wrong rope pair, a missing bias: errors of 1e-2 and up) fails.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>

#include "model_test_util.h"
#include "test_support.h"

namespace tern::test {
namespace {

constexpr double kLogitTol = 1e-4;

// The model as its reference computed it (model_test_util.h: gemma2's attention soft-cap).
Result<std::unique_ptr<Model>> load_as_referenced(const std::string& arch) {
  TERN_ASSIGN_OR_RETURN(auto model, Model::load(tiny_arch_dir(arch)));
  match_reference_attention(*model, arch);
  return model;
}

class TinyArch : public ::testing::TestWithParam<std::string> {};

TEST_P(TinyArch, MatchesTransformers) {
  const std::string dir = tiny_arch_dir(GetParam());
  auto model = load_as_referenced(GetParam());
  ASSERT_TRUE(model.is_ok()) << model.status().message();
  const auto ref = load_json(dir + "/reference.json");
  ASSERT_FALSE(ref.is_null());
  const int64_t vocab = (*model)->config().vocab_size;
  // Every kernel level this host runs (the scalar fallback included), with 1 and 2 threads.
  for (const std::string level : {"scalar", "avx2", "native"}) {
    for (int threads : {1, 2}) {
      ThreadPool pool(threads);
      const CpuFeatures host = CpuFeatures::detect();
      ExecContext ctx(pool, level == "native" ? host : host.capped(level));
      for (const auto& seq : ref["sequences"]) {
        const auto ids = seq["ids"].get<std::vector<int32_t>>();
        SCOPED_TRACE(GetParam() + " n=" + std::to_string(ids.size()) + " threads=" + std::to_string(threads) +
                     " cpu=" + level);
        const auto logits = all_logits(**model, ctx, ids, /*max_chunk=*/128);  // 300 ids: 3 chunks
        ASSERT_EQ(logits.size(), ids.size() * size_t(vocab));
        const float* last = logits.data() + (ids.size() - 1) * size_t(vocab);
        const auto want_last = seq["last_logits"].get<std::vector<double>>();
        double max_err = 0;
        for (int64_t v = 0; v < vocab; ++v) max_err = std::max(max_err, std::fabs(last[v] - want_last[size_t(v)]));
        EXPECT_LE(max_err, kLogitTol) << "last-position logits";
        const auto lse = seq["logsumexp"].get<std::vector<double>>();
        const auto top5 = seq["top5_ids"].get<std::vector<std::vector<int32_t>>>();
        const auto top5_logits = seq["top5_logits"].get<std::vector<std::vector<double>>>();
        for (size_t p = 0; p < ids.size(); ++p) {
          const float* row = logits.data() + p * size_t(vocab);
          ASSERT_NEAR(logsumexp(row, vocab), lse[p], kLogitTol) << "position " << p;
          for (size_t r = 0; r < 5; ++r) {
            ASSERT_NEAR(row[top5[p][r]], top5_logits[p][r], kLogitTol) << "position " << p << " rank " << r;
          }
        }
      }
    }
  }
}

TEST_P(TinyArch, Greedy16Identical) {
  const std::string dir = tiny_arch_dir(GetParam());
  auto model = load_as_referenced(GetParam());
  ASSERT_TRUE(model.is_ok()) << model.status().message();
  const auto ref = load_json(dir + "/reference.json");
  ThreadPool pool(2);
  ExecContext ctx(pool, CpuFeatures::detect());
  for (const auto& seq : ref["sequences"]) {
    const auto ids = seq["ids"].get<std::vector<int32_t>>();
    EXPECT_EQ(greedy(**model, ctx, ids, 16), seq["greedy16"].get<std::vector<int32_t>>()) << "n=" << ids.size();
  }
}

TEST(GemmaSoftcap, AttentionSoftcapIsBoundAndUsed) {
  auto model = Model::load(tiny_arch_dir("gemma2"));
  ASSERT_TRUE(model.is_ok()) << model.status().message();
  for (const auto& l : (*model)->weights().layers) EXPECT_EQ(l.attn.softcap, 50.f);
  EXPECT_EQ((*model)->weights().final_logit_softcap, 30.f);
  auto uncapped = load_as_referenced("gemma2");
  ASSERT_TRUE(uncapped.is_ok());
  ThreadPool pool(1);
  ExecContext ctx(pool, CpuFeatures::detect());
  const auto ref = load_json(tiny_arch_dir("gemma2") + "/reference.json");
  const auto ids = ref["sequences"][0]["ids"].get<std::vector<int32_t>>();
  const auto capped_logits = all_logits(**model, ctx, ids, 128);
  const auto plain_logits = all_logits(**uncapped, ctx, ids, 128);
  const int64_t vocab = (*model)->config().vocab_size;
  double first = 0, later = 0;  // position 0 attends to itself only: the cap cannot change it
  for (size_t i = 0; i < capped_logits.size(); ++i) {
    const double d = std::fabs(capped_logits[i] - plain_logits[i]);
    (i < size_t(vocab) ? first : later) = std::max(i < size_t(vocab) ? first : later, d);
  }
  EXPECT_LT(first, 1e-6);
  EXPECT_GT(later, 1e-3) << "the attention soft-cap changes later positions";
}

INSTANTIATE_TEST_SUITE_P(Archs, TinyArch,
                         ::testing::Values("llama", "llama_tied", "qwen2", "qwen3", "mistral_swa", "gpt2", "gemma2",
                                           "phi3", "glm4", "mixtral", "qwen2_moe", "qwen3_moe",
                                           "deepseek_v3"));

}  // namespace
}  // namespace tern::test
