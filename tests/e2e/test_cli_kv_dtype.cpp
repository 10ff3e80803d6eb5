// --kv-dtype on `tern eval ppl` and `tern run`: every storage type runs, f32 is the default and
// the reference, a quantized cache changes perplexity only a little, a bad name is a one-line error.
#include <gtest/gtest.h>

#include <cmath>
#include <nlohmann/json.hpp>

#include "test_support.h"

namespace tern::test {
namespace {

const std::string kDocs = model_dir("docs-llama-28m");

double ppl_with(const std::string& kv) {
  auto r = run_tern("eval ppl -m '" + kDocs + "' -f '" + shared_dir() + "/data/docs-val.txt' --ctx 128 --windows 2 --json" +
                    (kv.empty() ? "" : " --kv-dtype " + kv));
  EXPECT_EQ(r.exit_code, 0) << r.err;
  if (r.exit_code != 0) return NAN;
  auto j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["kv_dtype"], kv.empty() ? "f32" : kv);
  return j["ppl"].get<double>();
}

TEST(CliKvDtype, EvalPplEveryDtype) {
  const double f32 = ppl_with("");
  EXPECT_EQ(ppl_with("f32"), f32);
  for (const std::string kv : {"bf16", "int8", "fp8"}) {
    const double p = ppl_with(kv);
    EXPECT_NE(p, f32) << kv << " should round something";
    EXPECT_LT(std::abs(p - f32), 0.02 * f32) << kv;
  }
}

TEST(CliKvDtype, RunAcceptsItAndRejectsBadNames) {
  auto r = run_tern("run -m '" + kDocs + "' -p 'The kernel' -n 8 --temp 0 -q --kv-dtype int8");
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_FALSE(r.out.empty());
  auto bad = run_tern("run -m '" + kDocs + "' -p hi --kv-dtype int3");
  EXPECT_NE(bad.exit_code, 0);
  EXPECT_NE(bad.err.find("int3"), std::string::npos) << bad.err;
  auto bad_eval = run_tern("eval ppl -m '" + kDocs + "' -f '" + shared_dir() + "/data/docs-val.txt' --kv-dtype x");
  EXPECT_NE(bad_eval.exit_code, 0);
  EXPECT_NE(bad_eval.err.find("KV cache dtype"), std::string::npos) << bad_eval.err;
}

}  // namespace
}  // namespace tern::test
