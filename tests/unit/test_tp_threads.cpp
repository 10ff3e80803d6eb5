// Tensor parallelism without MPI: T ranks as T threads of this process, joined by a test-only
// communicator over shared memory, each with its own shard of a tiny checkpoint. Rank 0 decodes
// greedily, the others run run_tp_worker; the tokens must be the single process's. This checks the
// shard arithmetic, the two all-reduces per layer, the rank protocol and the LM-head gather in
// every build (the mpirun tests need TERN_MPI).
#include <gtest/gtest.h>

#include "test_support.h"
#include "tp_threads_util.h"

namespace tern {
namespace {

using test::tp_threads::greedy;
using test::tp_threads::tp_greedy;

class TpThreads : public ::testing::TestWithParam<const char*> {};

TEST_P(TpThreads, GreedyTokensMatchTheSingleProcess) {
  const std::string dir = test::tiny_arch_dir(GetParam());
  auto whole = Model::load(dir);
  ASSERT_TRUE(whole.is_ok()) << whole.status().message();
  ThreadPool pool(1);
  ExecContext ctx(pool, CpuFeatures::detect());
  const std::vector<int32_t> ids = {144, 325, 16, 224, 992, 922, 956};
  const std::vector<int32_t> want = greedy(**whole, ctx, ids, 12);
  ASSERT_EQ(want.size(), 12u);
  EXPECT_EQ(tp_greedy(dir, 2, ids, 12), want);
  // 4 ranks: 4 query heads, 2 KV heads -> each KV head replicated on two ranks.
  EXPECT_EQ(tp_greedy(dir, 4, ids, 12), want);
}

INSTANTIATE_TEST_SUITE_P(Dense, TpThreads,
                         ::testing::Values("llama", "llama_tied", "qwen2", "qwen3", "mistral_swa", "gemma2", "phi3",
                                           "glm4", "gpt2"));

}  // namespace
}  // namespace tern
