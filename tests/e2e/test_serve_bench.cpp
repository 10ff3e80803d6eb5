// tern bench serve against a live tern serve: every request completes, the JSON carries the latency
// percentiles and throughput per concurrency level, and the SVG plot is written.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "serve_engine_args.h"
#include "serve_test_util.h"

namespace tern::test {
namespace {

TEST(ServeBench, SweepReportsLatencyAndThroughputAsJsonAndSvg) {
  ServerProcess server{std::string(kServeEngineArgs)};
  ASSERT_GT(server.port(), 0) << server.log();
  TempDir dir;
  const auto r = run_tern("bench serve --url http://127.0.0.1:" + std::to_string(server.port()) +
                          " --concurrency 1,3 --prompt-tokens 32 --output-tokens 8 --requests 6 --json --plot '" +
                          dir.file("sweep.svg") + "'");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto j = nlohmann::json::parse(r.out, nullptr, false);
  ASSERT_FALSE(j.is_discarded()) << r.out;
  EXPECT_EQ(j["model"], kServeModel);  // found through /v1/models
  ASSERT_EQ(j["levels"].size(), 2u);
  for (const auto& level : j["levels"]) {
    EXPECT_EQ(level["completed"], 6) << level.dump();
    EXPECT_EQ(level["failed"], 0);
    EXPECT_EQ(level["output_tokens"], 6 * 8);
    EXPECT_GT(level["output_tokens_per_s"].get<double>(), 0);
    for (const char* k : {"ttft_ms", "itl_ms", "e2e_ms"}) {
      EXPECT_GT(level[k]["p50"].get<double>(), 0) << k;
      EXPECT_LE(level[k]["p50"].get<double>(), level[k]["p99"].get<double>()) << k;
    }
  }
  const std::string svg = slurp_file(dir.file("sweep.svg"));
  EXPECT_NE(svg.find("<svg"), std::string::npos);
  EXPECT_NE(svg.find("c=3"), std::string::npos);

  const auto bad = run_tern("bench serve --url http://127.0.0.1:" + std::to_string(server.port()) +
                            " --concurrency 1,x");
  EXPECT_EQ(bad.exit_code, 1);
  EXPECT_NE(bad.err.find("--concurrency"), std::string::npos) << bad.err;

  // One request count per level.
  const auto per_level = run_tern("bench serve --url http://127.0.0.1:" + std::to_string(server.port()) +
                                  " --concurrency 1,2 --prompt-tokens 8 --output-tokens 2 --requests 1,4 --json");
  ASSERT_EQ(per_level.exit_code, 0) << per_level.err;
  const auto pj = nlohmann::json::parse(per_level.out, nullptr, false);
  ASSERT_FALSE(pj.is_discarded()) << per_level.out;
  EXPECT_EQ(pj["levels"][0]["completed"], 1);
  EXPECT_EQ(pj["levels"][1]["completed"], 4);
  const auto mismatch = run_tern("bench serve --url http://127.0.0.1:" + std::to_string(server.port()) +
                                 " --concurrency 1,2,4 --requests 1,4");
  EXPECT_EQ(mismatch.exit_code, 1);
  EXPECT_NE(mismatch.err.find("one per concurrency level"), std::string::npos) << mismatch.err;
}

}  // namespace
}  // namespace tern::test
