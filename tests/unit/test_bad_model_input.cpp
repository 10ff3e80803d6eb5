// Issue 15 item 6: a broken checkpoint is one line that names the file and the field or tensor, never
// a crash and never silently accepted. Each case copies a tiny-arch checkpoint, breaks one thing and
// loads it. The cases of architectures other helpers are adding (MoE, MLA, fused tensors, partial
// rotary) skip, naming the architecture, until the unbroken checkpoint loads.
#include <gtest/gtest.h>

#include "bad_model_util.h"
#include "formats/model_config.h"
#include "model/model.h"

namespace tern::test {
namespace {

// The load fails with one line mentioning each of `words`.
void expect_error(const BrokenCheckpoint& ck, const std::vector<std::string>& words) {
  auto m = Model::load(ck.dir());
  ASSERT_FALSE(m.is_ok()) << "the broken checkpoint loaded";
  const std::string msg = m.status().message();
  EXPECT_EQ(msg.find('\n'), std::string::npos) << msg;
  for (const auto& w : words) EXPECT_NE(msg.find(w), std::string::npos) << "'" << w << "' in: " << msg;
}

TEST(BadModelInput, UnknownArchitectureListsTheSupportedOnes) {
  BrokenCheckpoint ck("llama");
  ck.edit_config([](nlohmann::json& j) { j["architectures"] = {"FrobnicatorForCausalLM"}; });
  expect_error(ck, {ck.config_path(), "FrobnicatorForCausalLM", "LlamaForCausalLM", "Qwen3ForCausalLM",
                    "MistralForCausalLM"});
}

TEST(BadModelInput, MissingRequiredFieldIsNamed) {
  for (const char* field : {"hidden_size", "num_hidden_layers", "num_attention_heads", "vocab_size"}) {
    SCOPED_TRACE(field);
    BrokenCheckpoint ck("qwen3");
    ck.edit_config([&](nlohmann::json& j) { j.erase(field); });
    expect_error(ck, {ck.config_path(), field});
  }
}

TEST(BadModelInput, InconsistentHeadsAreNamed) {
  BrokenCheckpoint ck("llama");
  ck.edit_config([](nlohmann::json& j) { j["num_key_value_heads"] = 3; });  // 4 query heads
  expect_error(ck, {ck.config_path(), "num_key_value_heads"});
}

TEST(BadModelInput, TensorOfTheWrongShapeIsNamed) {
  BrokenCheckpoint ck("llama");
  ck.resize_rows("model.layers.1.self_attn.k_proj.weight", -16);
  expect_error(ck, {ck.weights_path(), "model.layers.1.self_attn.k_proj.weight", "[16, 64]", "[32, 64]"});
}

TEST(BadModelInput, MissingTensorIsNamedWithItsFile) {
  BrokenCheckpoint ck("qwen2");
  ck.drop("model.layers.1.self_attn.v_proj.bias");
  expect_error(ck, {ck.weights_path(), "model.layers.1.self_attn.v_proj.bias"});
}

TEST(BadModelInput, UnknownExtraTensorIsNamed) {
  BrokenCheckpoint ck("llama_tied");
  ck.add("model.layers.0.mlp.frobnicator.weight", {4, 64});
  expect_error(ck, {ck.weights_path(), "model.layers.0.mlp.frobnicator.weight", "not used"});
}

// ---- architectures the other helpers add: run once their unbroken checkpoint loads --------------

// Architectures whose unbroken checkpoint does not load yet are collected and the test is marked
// skipped, naming them, after the cases of those that do load ran.
class UntilItLoads {
 public:
  bool loads(const std::string& arch) {
    auto plain = Model::load(tiny_arch_dir(arch));
    if (!plain.is_ok()) missing_ += (missing_.empty() ? "" : "; ") + arch + ": " + plain.status().message();
    return plain.is_ok();
  }
  bool any_missing() const { return !missing_.empty(); }
  const std::string& why() const { return missing_; }

 private:
  std::string missing_;
};

#define SKIP_IF_MISSING(u) \
  if ((u).any_missing()) GTEST_SKIP() << "not loading yet: " << (u).why()

// The config parser reads the MoE fields whether or not the architecture loads yet.
TEST(BadModelInput, MoreExpertsPerTokenThanExpertsInTheConfig) {
  for (const char* arch : {"mixtral", "qwen2_moe", "qwen3_moe", "deepseek_v3"}) {
    SCOPED_TRACE(arch);
    BrokenCheckpoint ck(arch);
    ck.edit_config([](nlohmann::json& j) { j["num_experts_per_tok"] = 5; });  // each has 4 experts
    auto c = load_model_config(ck.dir());
    ASSERT_FALSE(c.is_ok());
    EXPECT_EQ(c.status().message().rfind(ck.config_path() + ": num_experts_per_tok: 5 exceeds", 0), 0u)
        << c.status().message();
  }
}

TEST(BadModelInput, MoreExpertsPerTokenThanExperts) {
  UntilItLoads u;
  for (const char* arch : {"mixtral", "qwen2_moe", "qwen3_moe", "deepseek_v3"}) {
    SCOPED_TRACE(arch);
    if (!u.loads(arch)) continue;
    BrokenCheckpoint ck(arch);
    ck.edit_config([](nlohmann::json& j) { j["num_experts_per_tok"] = 5; });  // each has 4 experts
    expect_error(ck, {ck.config_path(), "num_experts_per_tok"});
  }
  SKIP_IF_MISSING(u);
}

TEST(BadModelInput, RotaryDimensionsBeyondTheHead) {
  UntilItLoads u;
  for (const char* arch : {"glm4", "phi3"}) {
    SCOPED_TRACE(arch);
    if (!u.loads(arch)) continue;
    BrokenCheckpoint ck(arch);
    ck.edit_config([](nlohmann::json& j) {
      j["rope_parameters"]["partial_rotary_factor"] = 2.0;  // rotary dim 32 > head_dim 16
      if (j.contains("partial_rotary_factor")) j["partial_rotary_factor"] = 2.0;
    });
    expect_error(ck, {ck.config_path(), "partial_rotary_factor"});
  }
  SKIP_IF_MISSING(u);
}

TEST(BadModelInput, LatentRopeDimensionInconsistentWithTheHead) {
  UntilItLoads u;
  if (!u.loads("deepseek_v3")) GTEST_SKIP() << u.why();
  BrokenCheckpoint ck("deepseek_v3");
  // qk_head_dim 24 = qk_nope_head_dim 16 + qk_rope_head_dim 8; a rope part of 40 exceeds the head,
  // and the checkpoint's kv_a_proj_with_mqa / q_b_proj no longer match either.
  ck.edit_config([](nlohmann::json& j) { j["qk_rope_head_dim"] = 40; });
  auto m = Model::load(ck.dir());
  ASSERT_FALSE(m.is_ok());
  const std::string msg = m.status().message();
  EXPECT_EQ(msg.find('\n'), std::string::npos) << msg;
  const bool names_field = msg.find(ck.config_path()) != std::string::npos &&
                           (msg.find("qk_rope_head_dim") != std::string::npos || msg.find("qk_head_dim") != std::string::npos);
  const bool names_tensor = msg.find(ck.weights_path()) != std::string::npos && msg.find("_proj") != std::string::npos;
  EXPECT_TRUE(names_field || names_tensor) << msg;
}

TEST(BadModelInput, FusedTensorOfTheWrongSize) {
  struct Case {
    const char* arch;
    const char* tensor;
  };
  UntilItLoads u;
  for (const Case c : {Case{"phi3", "model.layers.0.self_attn.qkv_proj.weight"},
                       Case{"phi3", "model.layers.1.mlp.gate_up_proj.weight"},
                       Case{"glm4", "model.layers.0.mlp.gate_up_proj.weight"}}) {
    SCOPED_TRACE(c.tensor);
    if (!u.loads(c.arch)) continue;
    BrokenCheckpoint ck(c.arch);
    ck.resize_rows(c.tensor, -2);
    expect_error(ck, {ck.weights_path(), c.tensor});
  }
  SKIP_IF_MISSING(u);
}

}  // namespace
}  // namespace tern::test
