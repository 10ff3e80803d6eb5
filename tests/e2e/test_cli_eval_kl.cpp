// tern eval ppl against a base model: KL divergence and top-1 agreement, directly (--base) and
// through saved base logits (--save-logits / --base-logits).
#include <gtest/gtest.h>

#include <filesystem>
#include <nlohmann/json.hpp>

#include "core/mapped_file.h"
#include "test_support.h"

namespace tern::test {
namespace {

const std::string kDocs = model_dir("docs-llama-28m");

std::string eval_args(const std::string& model, const std::string& text) {
  return "eval ppl -m '" + model + "' -f '" + text + "' --ctx 128 --windows 2 --json";
}

// A second copy of the model whose outputs differ: the same shards, a larger RMSNorm epsilon.
void make_perturbed_copy(const std::string& dst) {
  namespace fs = std::filesystem;
  for (const auto& e : fs::directory_iterator(kDocs)) {
    if (e.path().filename() != "config.json") fs::create_symlink(e.path(), fs::path(dst) / e.path().filename());
  }
  auto cfg = nlohmann::json::parse(*read_text_file(kDocs + "/config.json"));
  cfg["rms_norm_eps"] = 0.05;
  write_file(dst + "/config.json", cfg.dump());
}

TEST(CliEvalKl, ModelAgainstItselfIsZeroAndAPerturbedCopyIsNot) {
  const std::string text = shared_dir() + "/data/docs-val.txt";
  auto self = run_tern(eval_args(kDocs, text) + " --base '" + kDocs + "'");
  ASSERT_EQ(self.exit_code, 0) << self.err;
  auto j = nlohmann::json::parse(self.out);
  EXPECT_NEAR(j["kl_mean"].get<double>(), 0.0, 1e-6);
  EXPECT_EQ(j["top1"].get<double>(), 1.0);
  EXPECT_NEAR(j["delta_ppl_pct"].get<double>(), 0.0, 1e-3);
  EXPECT_EQ(j["tokens"].get<int64_t>(), 2 * 127);

  TempDir dir;
  make_perturbed_copy(dir.path());
  auto pert = run_tern(eval_args(dir.path(), text) + " --base '" + kDocs + "'");
  ASSERT_EQ(pert.exit_code, 0) << pert.err;
  auto p = nlohmann::json::parse(pert.out);
  EXPECT_GT(p["kl_mean"].get<double>(), 1e-4);
  EXPECT_LE(p["kl_median"].get<double>(), p["kl_p99"].get<double>());
  EXPECT_LT(p["top1"].get<double>(), 1.0);

  // Saved once, reused: the same numbers as --base.
  const std::string logits = dir.file("base.logits");
  auto save = run_tern(eval_args(kDocs, text) + " --save-logits '" + logits + "'");
  ASSERT_EQ(save.exit_code, 0) << save.err;
  auto reuse = run_tern(eval_args(dir.path(), text) + " --base-logits '" + logits + "'");
  ASSERT_EQ(reuse.exit_code, 0) << reuse.err;
  auto r = nlohmann::json::parse(reuse.out);
  EXPECT_DOUBLE_EQ(r["kl_mean"].get<double>(), p["kl_mean"].get<double>());
  EXPECT_DOUBLE_EQ(r["top1"].get<double>(), p["top1"].get<double>());

  // Text output names the figures.
  auto human = run_tern("eval ppl -m '" + dir.path() + "' -f '" + text + "' --ctx 128 --windows 2 --base-logits '" +
                        logits + "'");
  ASSERT_EQ(human.exit_code, 0) << human.err;
  EXPECT_NE(human.out.find("KL divergence from base: mean"), std::string::npos) << human.out;
  EXPECT_NE(human.out.find("top-1 agreement"), std::string::npos) << human.out;
}

TEST(CliEvalKl, BadBaseInputIsAOneLineError) {
  const std::string text = shared_dir() + "/data/docs-val.txt";
  TempDir dir;
  const std::string logits = dir.file("base.logits");
  ASSERT_EQ(run_tern(eval_args(kDocs, text) + " --save-logits '" + logits + "'").exit_code, 0);
  // Other settings than the saved ones.
  auto other_ctx = run_tern("eval ppl -m '" + kDocs + "' -f '" + text + "' --ctx 64 --windows 2 --base-logits '" +
                            logits + "'");
  EXPECT_NE(other_ctx.exit_code, 0);
  EXPECT_NE(other_ctx.err.find("ctx"), std::string::npos) << other_ctx.err;
  write_file(dir.file("junk.logits"), "not logits");
  auto junk = run_tern(eval_args(kDocs, text) + " --base-logits '" + dir.file("junk.logits") + "'");
  EXPECT_NE(junk.exit_code, 0);
  EXPECT_NE(junk.err.find("junk.logits"), std::string::npos) << junk.err;
  auto both = run_tern(eval_args(kDocs, text) + " --base '" + kDocs + "' --base-logits '" + logits + "'");
  EXPECT_NE(both.exit_code, 0);
  auto missing = run_tern(eval_args(kDocs, text) + " --base /nonexistent-model");
  EXPECT_NE(missing.exit_code, 0);
}

}  // namespace
}  // namespace tern::test
