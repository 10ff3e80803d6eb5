// docs-llama-28m (a real trained model, bf16 weights) against transformers' fp32 computation.
//
// Tolerance: transformers upcast the stored bf16 weights to fp32 and computed in fp32, which is what
// tern does (bf16 -> f32 is exact), so differences are again summation order only. Logits here are
// larger (|logit| up to ~15) and the model deeper (8 layers): we allow 2e-3 absolute on logits.
#include <gtest/gtest.h>

#include <cmath>

#include "eval/perplexity.h"
#include "text/tokenizer/tokenizer.h"
#include "model_test_util.h"
#include "test_support.h"

namespace tern::test {
namespace {

constexpr double kLogitTol = 2e-3;

class DocsLlama : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    auto m = Model::load(model_dir("docs-llama-28m"));
    ASSERT_TRUE(m.is_ok()) << m.status().message();
    model_ = std::move(m).value().release();
    auto t = Tokenizer::load(model_dir("docs-llama-28m"));
    ASSERT_TRUE(t.is_ok()) << t.status().message();
    tokenizer_ = new Tokenizer(std::move(t).value());
    ref_ = new nlohmann::json(load_json(model_dir("docs-llama-28m") + "/reference.json"));
  }
  static void TearDownTestSuite() {
    delete model_;
    delete tokenizer_;
    delete ref_;
  }
  static Model* model_;
  static Tokenizer* tokenizer_;
  static nlohmann::json* ref_;
};
Model* DocsLlama::model_ = nullptr;
Tokenizer* DocsLlama::tokenizer_ = nullptr;
nlohmann::json* DocsLlama::ref_ = nullptr;

TEST_F(DocsLlama, TokenIdsLogitsAndGreedy) {
  ThreadPool pool(2);
  ExecContext ctx(pool, CpuFeatures::detect());
  const int64_t vocab = model_->config().vocab_size;
  for (const auto& prompt : (*ref_)["prompts"]) {
    const std::string text = prompt["text"];
    SCOPED_TRACE(text);
    const auto ids = tokenizer_->encode(text);
    ASSERT_EQ(ids, prompt["ids"].get<std::vector<int32_t>>());
    const auto logits = all_logits(*model_, ctx, ids);
    ASSERT_EQ(logits.size(), ids.size() * size_t(vocab));
    const auto want = prompt["last_logits"].get<std::vector<double>>();
    const float* last = logits.data() + (ids.size() - 1) * size_t(vocab);
    double max_err = 0;
    for (int64_t v = 0; v < vocab; ++v) max_err = std::max(max_err, std::fabs(last[v] - want[size_t(v)]));
    EXPECT_LE(max_err, kLogitTol);
    const auto top8 = prompt["top8_ids"].get<std::vector<std::vector<int32_t>>>();
    const auto top8_logits = prompt["top8_logits"].get<std::vector<std::vector<double>>>();
    for (size_t p = 0; p < ids.size(); ++p) {
      for (size_t r = 0; r < top8[p].size(); ++r) {
        EXPECT_NEAR(logits[p * size_t(vocab) + size_t(top8[p][r])], top8_logits[p][r], kLogitTol);
      }
    }
    const auto want_greedy = prompt["greedy32"].get<std::vector<int32_t>>();
    EXPECT_EQ(greedy(*model_, ctx, ids, 32), want_greedy);
    EXPECT_EQ(tokenizer_->decode(want_greedy), prompt["greedy32_text"].get<std::string>());
  }
}

// The DESIGN.md protocol: 40 windows of 512 tokens; within 0.5% of transformers' 8.2955.
TEST_F(DocsLlama, PerplexityOnDocsVal) {
  ThreadPool pool(2);
  ExecContext ctx(pool, CpuFeatures::detect());
  auto text = read_text_file(shared_dir() + "/data/docs-val.txt");
  ASSERT_TRUE(text.is_ok());
  const auto tokens = tokenizer_->encode(*text);
  ASSERT_EQ(int64_t(tokens.size()), (*ref_)["docs_val_tokens"].get<int64_t>());
  auto r = perplexity(*model_, ctx, tokens, {.ctx = 512, .max_windows = 40});
  ASSERT_TRUE(r.is_ok()) << r.status().message();
  const double want = (*ref_)["ppl_val_ctx512_40win"];
  EXPECT_EQ(r->tokens_scored, (*ref_)["ppl_val_ctx512_40win_tokens_scored"].get<int64_t>());
  EXPECT_NEAR(r->ppl, want, want * 0.005);
  EXPECT_NEAR(r->ppl, want, want * 1e-4) << "tern should agree with transformers far inside the 0.5% bound";
}

}  // namespace
}  // namespace tern::test
