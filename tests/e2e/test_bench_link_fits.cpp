// bench_link under `mpirun -np 2` writes a fits file (version 2, with its compute-gap sweep) that
// `tern plan --devices 2 --link-fits` reads and prices with (issue 17 items 5-6). Shared memory here,
// a few repetitions: the test checks the file's shape and the round trip, never a time.
#include <gtest/gtest.h>

#include <filesystem>
#include <nlohmann/json.hpp>
#include <sstream>

#include "mpi_test_util.h"

namespace tern::test {
namespace {

TEST(BenchLinkFits, TheSweepsFitsFileIsReadByThePlanner) {
  TERN_SKIP_WITHOUT_MPI();
  const std::string bench = std::string(TERN_BUILD_DIR) + "/bench_link";
  if (!std::filesystem::exists(bench)) GTEST_SKIP() << "bench_link not built (TERN_BUILD_BENCH=OFF)";
  const CommandResult r = run_shell(mpirun_prefix(2) + "'" + bench +
                                    "' --reps 3 --gap-us 10 --gaps-us 0,50,200 --gap-work spin --max-bytes 8192");
  ASSERT_EQ(r.exit_code, 0) << r.err << r.out;
  int lines = 0, gap_rows = 0, version = 0;
  std::istringstream in(r.out);
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty() || line[0] != '{') continue;
    const auto j = nlohmann::json::parse(line);
    ++lines;
    if (j.contains("alpha_gap")) {
      ++gap_rows;
      EXPECT_EQ(j["points"].size(), 3u) << line;  // one α per gap
      EXPECT_GE(j["alpha0_us"].get<double>(), 0) << line;
    }
    if (j.contains("fits_version")) version = j["fits_version"].get<int>();
  }
  EXPECT_EQ(gap_rows, 5);  // p2p, all_reduce, all_gather, gather, broadcast
  EXPECT_EQ(version, 2);
  EXPECT_GT(lines, 20);
  TempDir tmp;
  write_file(tmp.file("link.out"), r.out);
  const CommandResult plan = run_tern("plan -m '" + std::string(TERN_SOURCE_DIR) +
                                      "/tests/data/plan_configs/llama-3.2-1b.json' --devices 2 -d dev-epyc-2vcpu -c 1 "
                                      "--link-fits '" + tmp.file("link.out") + "' --json");
  ASSERT_EQ(plan.exit_code, 0) << plan.err;
  const auto j = nlohmann::json::parse(plan.out);
  EXPECT_EQ(j["link"]["priced_by"], "bench_link_fits");
  for (const auto& l : j["layouts"]) EXPECT_GT(l["comm_s"].get<double>(), 0) << l["name"];
}

}  // namespace
}  // namespace tern::test
