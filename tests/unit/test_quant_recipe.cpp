// The recipe tern quantize runs by default for each method and bit width (compress/recipe.h), the default
// int8 linears (llama.cpp's "more bits" layers), and round-to-nearest with MSE-clipped group ranges.
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <set>

#include "compress/mixed_precision.h"
#include "compress/mse_clip.h"
#include "compress/recipe.h"

namespace tern {
namespace {

TEST(QuantRecipe, FourBitDefaultsAreTheMeasuredRecipes) {
  for (const char* method : {"rtn", "gptq", "awq"}) {
    const QuantRecipe r = default_recipe(method, 4);
    EXPECT_TRUE(r.asymmetric) << method;
    EXPECT_EQ(r.embed_bits, 8) << method;
    EXPECT_TRUE(r.int8_modules) << method;
    EXPECT_TRUE(r.mse_clip) << method;
  }
  const QuantRecipe g = default_recipe("gptq", 4);
  EXPECT_EQ(g.sequential, 1) << "sequential GPTQ, one calibration pass per layer";
  EXPECT_EQ(g.calib_windows, 128);
  EXPECT_TRUE(default_recipe("awq", 4).awq_gptq);
  EXPECT_EQ(default_recipe("rtn", 4).sequential, 0);
}

TEST(QuantRecipe, EightBitDefaults) {
  const QuantRecipe sq = default_recipe("smoothquant", 8);
  EXPECT_TRUE(sq.sq_alpha_search);
  EXPECT_FALSE(sq.asymmetric);
  for (const char* method : {"rtn", "gptq", "awq", "smoothquant"}) {
    const QuantRecipe r = default_recipe(method, 8);
    EXPECT_EQ(r.embed_bits, 16) << method << ": int8 checkpoints keep the embedding";
    EXPECT_FALSE(r.int8_modules) << method;
    EXPECT_FALSE(r.asymmetric) << method;
  }
}

TEST(QuantRecipe, DefaultInt8ModulesAreEveryVDownInTheMoreBitsLayersAndTheFirstO) {
  auto layers_of = [](const std::vector<std::string>& names, const std::string& tail) {
    std::set<int> out;
    for (const auto& n : names) {
      if (n.size() < tail.size() || n.compare(n.size() - tail.size(), tail.size(), tail) != 0) continue;
      out.insert(std::stoi(n.substr(std::string("model.layers.").size())));
    }
    return out;
  };
  const auto m8 = default_int8_modules(8);  // docs-llama-28m: n / 8 = 1
  EXPECT_EQ(m8.size(), 13u);
  EXPECT_EQ(layers_of(m8, ".self_attn.v_proj"), (std::set<int>{0, 1, 2, 3, 4, 5, 6, 7}));
  EXPECT_EQ(layers_of(m8, ".mlp.down_proj"), (std::set<int>{0, 3, 6, 7}));
  EXPECT_EQ(layers_of(m8, ".self_attn.o_proj"), (std::set<int>{0}));
  const auto m16 = default_int8_modules(16);  // Llama-3.2-1B
  EXPECT_EQ(layers_of(m16, ".self_attn.v_proj").size(), 16u);
  EXPECT_EQ(layers_of(m16, ".mlp.down_proj"), (std::set<int>{0, 1, 4, 7, 10, 13, 14, 15}));
  EXPECT_EQ(layers_of(m16, ".self_attn.o_proj"), (std::set<int>{0, 1}));
  EXPECT_EQ(m16.size(), 26u);
  EXPECT_EQ(layers_of(default_int8_modules(2), ".self_attn.o_proj"), (std::set<int>{0})) << "at least one layer";
  for (const auto& n : m16) {
    EXPECT_EQ(n.find("q_proj"), std::string::npos) << n;
    EXPECT_EQ(n.find("k_proj"), std::string::npos) << n;
    EXPECT_EQ(n.find("gate_proj"), std::string::npos) << n;
    EXPECT_EQ(n.find("up_proj"), std::string::npos) << n;
  }
}

// Heavy-tailed weights: clipping the range trades a little error on the largest values for finer steps
// everywhere else, so the per-group MSE choice is never worse than absmax and clearly better here.
TEST(RtnMseClip, NeverWorseThanAbsmaxAndBetterOnHeavyTails) {
  std::mt19937 rng(7);
  std::student_t_distribution<float> t(3.0f);
  const int64_t rows = 64, cols = 256;
  std::vector<float> w(size_t(rows * cols));
  for (auto& v : w) v = 0.02f * t(rng);
  for (bool sym : {false, true}) {
    const QuantSpec spec{4, 128, sym};
    auto plain = quantize_rtn(w.data(), rows, cols, spec);
    auto mse = quantize_rtn_mse(w.data(), rows, cols, spec);
    ASSERT_TRUE(plain.is_ok() && mse.is_ok());
    const auto dp = dequantize(*plain), dm = dequantize(*mse);
    double ep = 0, em = 0;
    for (int64_t g = 0; g < rows * cols / 128; ++g) {  // per group: MSE clip picks the least-error range
      double gp = 0, gm = 0;
      for (int64_t i = g * 128; i < (g + 1) * 128; ++i) {
        gp += (w[size_t(i)] - dp[size_t(i)]) * (w[size_t(i)] - dp[size_t(i)]);
        gm += (w[size_t(i)] - dm[size_t(i)]) * (w[size_t(i)] - dm[size_t(i)]);
      }
      EXPECT_LE(gm, gp * (1 + 1e-9)) << "group " << g;
      ep += gp, em += gm;
    }
    EXPECT_LT(em, 0.95 * ep) << (sym ? "sym" : "asym") << " " << em / ep;
  }
  EXPECT_FALSE(quantize_rtn_mse(w.data(), rows, cols, QuantSpec{4, 96, false}).is_ok()) << "group must divide cols";
}

}  // namespace
}  // namespace tern
