// Issue 15 item 6 through the CLI: a broken checkpoint given to a command is one line
// "tern: error: <file>: ..." naming the field or tensor, and exit code 1.
#include <gtest/gtest.h>

#include <algorithm>

#include "bad_model_util.h"

namespace tern::test {
namespace {

void expect_one_line(const CommandResult& r, const std::vector<std::string>& words) {
  EXPECT_EQ(r.exit_code, 1) << r.err;
  EXPECT_EQ(r.out, "");
  EXPECT_EQ(r.err.rfind("tern: error: ", 0), 0u) << r.err;
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
  for (const auto& w : words) EXPECT_NE(r.err.find(w), std::string::npos) << "'" << w << "' in: " << r.err;
}

TEST(CliBadModel, UnknownArchitecture) {
  BrokenCheckpoint ck("qwen2");
  ck.edit_config([](nlohmann::json& j) { j["architectures"] = {"FrobnicatorForCausalLM"}; });
  expect_one_line(run_tern("info -m '" + ck.dir() + "'"),
                  {ck.config_path(), "FrobnicatorForCausalLM", "supported", "Qwen2ForCausalLM"});
}

TEST(CliBadModel, MissingField) {
  BrokenCheckpoint ck("mistral_swa");
  ck.edit_config([](nlohmann::json& j) { j.erase("num_hidden_layers"); });
  expect_one_line(run_tern("info -m '" + ck.dir() + "'"), {ck.config_path(), "num_hidden_layers"});
}

TEST(CliBadModel, WrongShapeMissingAndExtraTensors) {
  {
    BrokenCheckpoint ck("llama");
    ck.resize_rows("model.layers.0.mlp.up_proj.weight", 1);
    expect_one_line(run_tern("info -m '" + ck.dir() + "'"), {ck.weights_path(), "model.layers.0.mlp.up_proj.weight"});
  }
  {
    BrokenCheckpoint ck("llama");
    ck.drop("model.norm.weight");
    expect_one_line(run_tern("info -m '" + ck.dir() + "'"), {ck.weights_path(), "model.norm.weight"});
  }
  {
    BrokenCheckpoint ck("qwen3");
    ck.add("model.layers.1.self_attn.r_norm.weight", {16});
    expect_one_line(run_tern("info -m '" + ck.dir() + "'"), {ck.weights_path(), "model.layers.1.self_attn.r_norm.weight"});
  }
}

}  // namespace
}  // namespace tern::test
