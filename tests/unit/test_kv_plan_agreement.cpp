// Issue 15 item 3: `tern plan`'s KV arithmetic (config.json alone, plan/kv_bytes.h) equals what the
// paged pool allocates (kv/paged_kv_cache.h, from the parsed ModelConfig), for every tiny
// architecture under ../shared/models/tiny-archs and every `tern synth --shape`, at every KV dtype,
// at the engine's block size (16) and SequenceKvCache's (64). Gemma 2's sliding-window layers hold
// every token in the pool (a block spans all layers), and the plan counts them so.
#include <gtest/gtest.h>

#include <filesystem>

#include "core/mapped_file.h"
#include "formats/model_config.h"
#include "kv/paged_kv_cache.h"
#include "model/synth.h"
#include "plan/kv_bytes.h"
#include "plan/memory_budget.h"
#include "plan/model_shape.h"
#include "test_support.h"

namespace tern::test {
namespace {

void expect_agreement(const std::string& text, const std::string& name) {
  SCOPED_TRACE(name);
  auto cfg = parse_model_config(text, name);
  ASSERT_TRUE(cfg.is_ok()) << cfg.status().message();
  auto shape = plan::parse_model_shape(text, name);
  ASSERT_TRUE(shape.is_ok()) << shape.status().message();
  for (KvDType t : {KvDType::F32, KvDType::BF16, KvDType::INT8, KvDType::FP8}) {
    const plan::KvPrecision kv = plan::kv_precision(t);
    const double planned = plan::kv_bytes_per_token(*shape, kv);
    // The same arithmetic from the parsed config (what tern serve's default budget uses).
    EXPECT_EQ(plan::kv_bytes_per_token(plan::shape_from_config(*cfg), kv), planned) << kv.name;
    for (int block : {16, 64}) {
      PagedKvCache pool(*cfg, block, t);
      EXPECT_EQ(double(pool.bytes_per_token()), planned) << kv.name;
      EXPECT_EQ(double(pool.block_bytes()), planned * block) << kv.name << " block " << block;
    }
  }
}

TEST(KvPlanAgreement, EveryTinyArch) {
  const std::filesystem::path root = tiny_arch_dir("llama") + "/..";
  int n = 0;
  for (const auto& e : std::filesystem::directory_iterator(root)) {
    const std::string file = e.path().string() + "/config.json";
    if (!std::filesystem::exists(file)) continue;
    auto text = read_text_file(file);
    ASSERT_TRUE(text.is_ok()) << text.status().message();
    expect_agreement(*text, file);
    ++n;
  }
  EXPECT_GE(n, 13);
}

TEST(KvPlanAgreement, EverySynthShape) {
  for (const SynthShape& s : synth_shapes()) expect_agreement(synth_config_json(s), "synth " + s.name);
}

// MLA stores one latent row per token and layer: kv_lora_rank + qk_rope_head_dim values, one scale.
TEST(KvPlanAgreement, DeepSeekV3TinyIsTheLatent) {
  auto cfg = load_model_config(tiny_arch_dir("deepseek_v3"));
  ASSERT_TRUE(cfg.is_ok()) << cfg.status().message();
  EXPECT_EQ(PagedKvCache(*cfg, 16, KvDType::F32).bytes_per_token(), size_t(2 * (32 + 8) * 4));
  EXPECT_EQ(PagedKvCache(*cfg, 16, KvDType::INT8).bytes_per_token(), size_t(2 * ((32 + 8) + 4)));
}

}  // namespace
}  // namespace tern::test
