// The speculative decoding flags end to end (`tern bench offline`, which `tern serve` shares them
// with): n-gram and draft-model runs report their acceptance; an unknown method, --draft-model
// without --speculative draft (and the reverse), a draft model with another vocabulary and values
// out of range are one-line errors naming the flag.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "core/cpu_features.h"
#include "test_support.h"

namespace tern::test {
namespace {

const std::string kDocs = model_dir("docs-llama-28m");

CommandResult bench(const std::string& args) {
  return run_tern("bench offline -m '" + kDocs + "' -t 2 --json --requests 2 --concurrency 2 --prompt-len 24 --output-len 24 " + args);
}

TEST(CliSpeculative, NgramAndDraftModelRunAndReport) {
  for (const std::string& flags : {std::string("--speculative ngram --prompt-lookup-min 1"),
                                   "--speculative draft --draft-model '" + kDocs + "' --num-speculative-tokens 3"}) {
    auto r = bench(flags);
    ASSERT_EQ(r.exit_code, 0) << flags << "\n" << r.err;
    const auto j = nlohmann::json::parse(r.out);
    EXPECT_EQ(j["output_tokens"].get<int64_t>(), 2 * 24) << flags;
    ASSERT_TRUE(j.contains("spec_acceptance_rate")) << flags;
    EXPECT_GE(j["spec_acceptance_rate"].get<double>(), 0.0);
    EXPECT_LE(j["spec_acceptance_rate"].get<double>(), 1.0);
  }
  // The model drafting for itself proposes and is accepted.
  auto r = bench("--speculative draft --draft-model '" + kDocs + "'");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_GT(nlohmann::json::parse(r.out)["spec_draft_tokens"].get<int64_t>(), 0);
}

// Rows a step may fill with drafts: 8 where the AVX-512 even/odd bf16 GEMV verifies them cheaply, 4
// where the CPU (or --cpu) stops at AVX2, and what --speculative-max-batch-rows says when given.
TEST(CliSpeculative, MaxBatchRowsFollowsTheCpuUnlessGiven) {
  const bool avx512 = CpuFeatures::detect().avx512;
  for (const auto& [flags, rows] : std::vector<std::pair<std::string, int>>{
           {"", avx512 ? 8 : 4}, {"--cpu avx2", 4}, {"--speculative-max-batch-rows 6", 6}}) {
    auto r = bench("--speculative ngram " + flags);
    ASSERT_EQ(r.exit_code, 0) << flags << "\n" << r.err;
    EXPECT_EQ(nlohmann::json::parse(r.out)["spec_max_batch_rows"].get<int>(), rows) << flags;
  }
}

TEST(CliSpeculative, BadFlagsAreOneLineErrorsNamingThem) {
  struct Case {
    std::string args, needle;
  };
  const std::vector<Case> cases = {
      {"--speculative eagle", "'eagle'"},
      {"--draft-model '" + kDocs + "'", "--draft-model needs --speculative draft"},
      {"--speculative draft", "--speculative draft needs --draft-model"},
      {"--speculative draft --draft-model '" + tiny_arch_dir("llama") + "'", "vocabulary has 1024 tokens"},
      {"--speculative ngram --num-speculative-tokens 0", "num_speculative_tokens"},
      {"--speculative ngram --prompt-lookup-min 5 --prompt-lookup-max 2", "prompt_lookup"},
      {"--speculative ngram --speculative-max-batch-rows 0", "max_batch_rows"},
  };
  for (const Case& c : cases) {
    auto r = bench(c.args);
    EXPECT_EQ(r.exit_code, 1) << c.args << "\n" << r.err;
    EXPECT_NE(r.err.find(c.needle), std::string::npos) << c.args << "\n" << r.err;
  }
}

}  // namespace
}  // namespace tern::test
