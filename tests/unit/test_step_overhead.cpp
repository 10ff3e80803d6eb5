// The engine's fixed-cost probe (engine/step_overhead.h) on real tiny models through the real engine:
// it solves four non-negative costs that reproduce its four probe steps, cleans up after itself,
// and refuses bad options. (How large the costs are is the planner check's business, not a test's.)
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>

#include "core/cpu_features.h"
#include "core/thread_pool.h"
#include "engine/step_overhead.h"
#include "core/exec_context.h"
#include "test_support.h"

namespace tern {
namespace {

TEST(StepOverhead, SolvesFourCostsThatReproduceItsProbes) {
  ThreadPool pool(1);
  ExecContext ctx(pool, CpuFeatures::detect());
  test::TempDir dir;
  StepOverheadOptions o;
  o.scratch_dir = dir.path();
  o.new_tokens = 16;
  o.reps = 1;
  auto r = measure_step_overhead(ctx, o);
  ASSERT_TRUE(r.is_ok()) << r.status().message();
  for (double t : r->probe_us) EXPECT_GT(t, 0);
  for (double c : {r->step_us, r->layer_us, r->sequence_us, r->sequence_layer_us}) {
    EXPECT_TRUE(std::isfinite(c));
    EXPECT_GE(c, 0);
  }
  // The fit goes through all four probes unless noise made a cost negative (then clamped to 0).
  auto model = [&](int layers, int seqs) {
    return r->step_us + layers * r->layer_us + seqs * (r->sequence_us + layers * r->sequence_layer_us);
  };
  if (!r->clamped) {
    const int layers[4] = {1, 9, 1, 9}, seqs[4] = {1, 1, 16, 16};
    for (int i = 0; i < 4; ++i) EXPECT_NEAR(model(layers[i], seqs[i]), r->probe_us[i], 1e-6 * r->probe_us[3]) << i;
    EXPECT_GE(r->attention_kv_gbs, 0);
  } else {
    EXPECT_GT(r->probe_us[3], r->probe_us[0]) << "nine layers of sixteen sequences cost more than one of one";
  }
  EXPECT_TRUE(std::filesystem::is_empty(dir.path())) << "the probe models are removed";
}

TEST(StepOverhead, RefusesBadOptions) {
  ThreadPool pool(1);
  ExecContext ctx(pool, CpuFeatures::detect());
  StepOverheadOptions o;
  EXPECT_FALSE(measure_step_overhead(ctx, o).is_ok()) << "no scratch directory";
  o.scratch_dir = "/proc/no-such-dir/probe";
  EXPECT_FALSE(measure_step_overhead(ctx, o).is_ok()) << "an unwritable scratch directory is an error";
}

}  // namespace
}  // namespace tern
