// tern info on mixtures of experts and latent attention: total and active parameters, the weight
// bytes one decode token reads (attention, routers, top-k routed and shared experts, head: not every
// expert), MLA's KV per token; for published configs without weights (a directory holding only
// config.json) as for loaded tiny checkpoints.
#include <gtest/gtest.h>

#include <filesystem>
#include <nlohmann/json.hpp>

#include "model/model.h"
#include "test_support.h"

namespace tern::test {
namespace {

std::string plan_config(const std::string& name) {
  return std::string(TERN_SOURCE_DIR) + "/tests/data/plan_configs/" + name + ".json";
}

// A directory holding only the published config.json.
struct ConfigOnly {
  explicit ConfigOnly(const std::string& name) {
    std::filesystem::copy_file(plan_config(name), dir.file("config.json"));
  }
  TempDir dir;
};

nlohmann::json info_json(const std::string& dir) {
  const auto r = run_tern("info -m '" + dir + "' --json");
  EXPECT_EQ(r.exit_code, 0) << r.err;
  return r.exit_code == 0 ? nlohmann::json::parse(r.out) : nlohmann::json::object();
}

TEST(CliInfoMoe, Qwen3_30B_A3B_FromItsConfigAlone) {
  ConfigOnly m("qwen3-30b-a3b");
  const auto j = info_json(m.dir.path());
  EXPECT_EQ(j["config_only"], true);
  EXPECT_EQ(j["architecture"], "Qwen3MoeForCausalLM");
  const int64_t total = j["parameters"], active = j["active_parameters"];
  EXPECT_NEAR(double(total) / 1e9, 30.53, 0.01);
  EXPECT_NEAR(double(active) / 1e9, 3.353, 0.001);
  EXPECT_EQ(j["experts"]["routed"], 128);
  EXPECT_EQ(j["experts"]["per_token"], 8);
  EXPECT_EQ(j["experts"]["moe_layers"], 48);
  // bf16: all 30.5 B resident; a decode token reads 2 bytes × (active − the gathered embedding table).
  const double table = 151936.0 * 2048;
  EXPECT_DOUBLE_EQ(j["weight_bytes"].get<double>(), 2.0 * double(total));
  EXPECT_DOUBLE_EQ(j["weight_bytes_per_token"].get<double>(), 2.0 * (double(active) - table));
  // GQA: 2 × 4 KV heads × 128 × 48 layers.
  EXPECT_EQ(j["kv_bytes_per_token_bf16"], 2 * 4 * 128 * 48 * 2);
  const auto text = run_tern("info -m '" + m.dir.path() + "'");
  EXPECT_EQ(text.exit_code, 0) << text.err;
  EXPECT_NE(text.out.find("config.json only"), std::string::npos) << text.out;
  EXPECT_NE(text.out.find("active params    3353032704 per token"), std::string::npos) << text.out;
  EXPECT_NE(text.out.find("128 routed, 8 per token, in 48 of 48 layers"), std::string::npos) << text.out;
}

TEST(CliInfoMoe, MixtralAndDeepSeekV3FromTheirConfigs) {
  ConfigOnly mixtral("mixtral-8x7b");
  const auto mj = info_json(mixtral.dir.path());
  EXPECT_NEAR(mj["parameters"].get<double>() / 1e9, 46.70, 0.01);
  EXPECT_NEAR(mj["active_parameters"].get<double>() / 1e9, 12.88, 0.01);
  ConfigOnly ds("deepseek-v3");
  const auto dj = info_json(ds.dir.path());
  EXPECT_NEAR(dj["parameters"].get<double>() / 1e9, 671.03, 0.01);
  EXPECT_NEAR(dj["active_parameters"].get<double>() / 1e9, 37.55, 0.01);
  EXPECT_EQ(dj["experts"]["shared"], 1);
  EXPECT_EQ(dj["experts"]["moe_layers"], 58);  // first_k_dense_replace 3 of 61
  EXPECT_EQ(dj["dtype"], "fp8");
  // The latent and the rope key: (512 + 64) × 61 layers, not 2 × 128 heads × 192 × 61.
  EXPECT_EQ(dj["kv_bytes_per_token_bf16"], 576 * 61 * 2);
  EXPECT_EQ(dj["mla"]["kv_lora_rank"], 512);
  EXPECT_EQ(dj["mla"]["qk_rope_head_dim"], 64);
  // fp8 weights: ~1 byte per streamed weight, so the per-token read is near the active count.
  const double per_token = dj["weight_bytes_per_token"];
  EXPECT_GT(per_token, 0.95 * (dj["active_parameters"].get<double>() - 129280.0 * 7168));
  EXPECT_LT(per_token, 0.3 * dj["weight_bytes"].get<double>());
}

// The tiny MoE / MLA checkpoints, once their architecture loads: the same facts from real tensors.
TEST(CliInfoMoe, TinyCheckpointsOnceTheyLoad) {
  std::string missing;
  for (const char* arch : {"mixtral", "qwen2_moe", "qwen3_moe", "deepseek_v3"}) {
    SCOPED_TRACE(arch);
    const std::string dir = tiny_arch_dir(arch);
    auto model = Model::load(dir);
    if (!model.is_ok()) {
      missing += std::string(missing.empty() ? "" : "; ") + arch + ": " + model.status().message();
      continue;
    }
    const auto j = info_json(dir);
    EXPECT_EQ(j["parameters"], (*model)->parameter_count());
    EXPECT_LT(j["active_parameters"].get<int64_t>(), j["parameters"].get<int64_t>());
    EXPECT_EQ(j["experts"]["per_token"], 2);
    // f32: 4 bytes per streamed weight, the experts a token skips not among them.
    EXPECT_LT(j["weight_bytes_per_token"].get<double>(), j["weight_bytes"].get<double>());
    if (std::string(arch) == "deepseek_v3") {
      EXPECT_EQ(j["kv_bytes_per_token_f32"], (32 + 8) * 2 * 4);  // kv_lora_rank 32 + rope 8, 2 layers
    }
  }
  if (!missing.empty()) GTEST_SKIP() << "not loading yet: " << missing;
}

}  // namespace
}  // namespace tern::test
