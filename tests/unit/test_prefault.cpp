// prefault_weights (model/prefault.h) maps the pages the first forward reads ahead of it: it changes
// nothing the model computes, for dense, quantized (packed in the arena) and MoE checkpoints alike.
#include <gtest/gtest.h>

#include "../model_test_util.h"
#include "../test_support.h"
#include "model/model.h"
#include "model/prefault.h"

namespace tern {
namespace {

TEST(Prefault, ChangesNoLogits) {
  const std::vector<int32_t> ids = {5, 17, 300, 2, 64};
  ThreadPool pool(2);
  ExecContext ctx(pool, CpuFeatures::detect());
  for (const char* arch : {"llama", "llama_tied", "qwen2_moe", "deepseek_v3"}) {
    auto plain = Model::load(test::tiny_arch_dir(arch));
    auto touched = Model::load(test::tiny_arch_dir(arch));
    ASSERT_TRUE(plain.is_ok() && touched.is_ok()) << arch;
    prefault_weights(**touched);
    EXPECT_EQ(test::all_logits(**plain, ctx, ids), test::all_logits(**touched, ctx, ids)) << arch;
  }
}

}  // namespace
}  // namespace tern
