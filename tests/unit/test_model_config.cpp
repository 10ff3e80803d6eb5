// config.json parsing: the shared checkpoints (transformers 5.x form), hand-written 4.x-form
// configs of real models, and malformed configs that must fail naming the source and key.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "formats/model_config.h"
#include "test_support.h"

namespace tern {
namespace {

using nlohmann::json;

ModelConfig load_ok(const std::string& dir) {
  auto r = load_model_config(dir);
  EXPECT_TRUE(r.is_ok()) << r.status().message();
  return r.is_ok() ? *r : ModelConfig{};
}

ModelConfig parse_ok(const json& j) {
  auto r = parse_model_config(j.dump(), "fixture.json");
  EXPECT_TRUE(r.is_ok()) << r.status().message();
  return r.is_ok() ? *r : ModelConfig{};
}

TEST(ModelConfig, DocsLlama5xForm) {
  ModelConfig c = load_ok(test::model_dir("docs-llama-28m"));
  EXPECT_EQ(c.architecture, "LlamaForCausalLM");
  EXPECT_EQ(c.model_type, "llama");
  EXPECT_EQ(c.vocab_size, 8192);
  EXPECT_EQ(c.hidden_size, 512);
  EXPECT_EQ(c.intermediate_size, 1408);
  EXPECT_EQ(c.n_layers, 8);
  EXPECT_EQ(c.n_heads, 8);
  EXPECT_EQ(c.n_kv_heads, 4);
  EXPECT_EQ(c.head_dim, 64);
  EXPECT_DOUBLE_EQ(c.rms_norm_eps, 1e-5);
  EXPECT_EQ(c.max_position_embeddings, 4096);
  EXPECT_EQ(c.rope_type, "default");
  EXPECT_DOUBLE_EQ(c.rope.theta, 10000.0);
  EXPECT_EQ(c.rope.rotary_dim, 64);
  EXPECT_TRUE(c.tie_word_embeddings);
  EXPECT_FALSE(c.attention_bias);
  EXPECT_EQ(c.dtype, DType::BF16);
  EXPECT_EQ(c.bos_token_ids, std::vector<int32_t>{0});
  EXPECT_EQ(c.eos_token_ids, std::vector<int32_t>{1});
  EXPECT_EQ(c.sliding_window, 0);
  EXPECT_EQ(c.kv_bytes_per_token(2), 2 * 8 * 4 * 64 * 2);
}

TEST(ModelConfig, TinyArchs) {
  struct Want {
    const char* arch;
    int head_dim, n_kv_heads, rotary_dim, sliding_window;
    double theta;
    bool tie, attention_bias;
    const char* act;
  };
  const Want wants[] = {
      {"llama", 16, 2, 16, 0, 500000.0, false, false, "silu"},
      {"llama_tied", 32, 2, 32, 0, 10000.0, true, false, "silu"},
      {"qwen2", 16, 2, 16, 0, 1e6, false, true, "silu"},
      {"qwen3", 32, 2, 32, 0, 10000.0, false, false, "silu"},
      {"mistral_swa", 16, 2, 16, 64, 10000.0, false, false, "silu"},
      {"mixtral", 16, 2, 16, 0, 1e6, false, false, "silu"},
      {"qwen2_moe", 16, 2, 16, 0, 10000.0, false, true, "silu"},
      {"qwen3_moe", 32, 2, 32, 0, 10000.0, false, false, "silu"},
      {"gemma2", 16, 2, 16, 64, 10000.0, true, false, "gelu_pytorch_tanh"},
      {"phi3", 16, 2, 16, 0, 10000.0, false, false, "silu"},
      {"glm4", 16, 2, 8, 0, 10000.0, false, true, "silu"},
      {"gpt2", 16, 4, 16, 0, 10000.0, true, false, "gelu_new"},
      {"deepseek_v3", 8, 4, 8, 0, 10000.0, false, false, "silu"},
  };
  for (const Want& w : wants) {
    SCOPED_TRACE(w.arch);
    ModelConfig c = load_ok(test::tiny_arch_dir(w.arch));
    EXPECT_EQ(c.hidden_size, 64);
    EXPECT_EQ(c.n_layers, 2);
    EXPECT_EQ(c.n_heads, 4);
    EXPECT_EQ(c.vocab_size, 1024);
    EXPECT_EQ(c.max_position_embeddings, 1024);
    EXPECT_EQ(c.dtype, DType::F32);
    EXPECT_EQ(c.eos_token_ids, std::vector<int32_t>{1});
    EXPECT_EQ(c.head_dim, w.head_dim);
    EXPECT_EQ(c.n_kv_heads, w.n_kv_heads);
    EXPECT_EQ(c.rope.rotary_dim, w.rotary_dim);
    EXPECT_EQ(c.sliding_window, w.sliding_window);
    EXPECT_DOUBLE_EQ(c.rope.theta, w.theta);
    EXPECT_EQ(c.tie_word_embeddings, w.tie);
    EXPECT_EQ(c.attention_bias, w.attention_bias);
    EXPECT_EQ(c.hidden_act, w.act);
  }
  ModelConfig llama = load_ok(test::tiny_arch_dir("llama"));
  EXPECT_EQ(llama.rope_type, "llama3");
  EXPECT_DOUBLE_EQ(llama.rope.llama3_factor, 8.0);
  EXPECT_DOUBLE_EQ(llama.rope.llama3_low_freq_factor, 1.0);
  EXPECT_DOUBLE_EQ(llama.rope.llama3_high_freq_factor, 4.0);
  EXPECT_DOUBLE_EQ(llama.rope.llama3_original_max_position, 256.0);
  ModelConfig gpt2 = load_ok(test::tiny_arch_dir("gpt2"));
  EXPECT_EQ(gpt2.intermediate_size, 256);  // n_inner null -> 4 × n_embd
  EXPECT_DOUBLE_EQ(gpt2.rms_norm_eps, 1e-5);
}

// Llama-3.2-1B's config.json as transformers 4.45 wrote it.
json llama32_1b() {
  return json::parse(R"({
    "architectures": ["LlamaForCausalLM"], "attention_bias": false, "attention_dropout": 0.0,
    "bos_token_id": 128000, "eos_token_id": [128001, 128008, 128009], "head_dim": 64, "hidden_act": "silu",
    "hidden_size": 2048, "initializer_range": 0.02, "intermediate_size": 8192, "max_position_embeddings": 131072,
    "mlp_bias": false, "model_type": "llama", "num_attention_heads": 32, "num_hidden_layers": 16,
    "num_key_value_heads": 8, "pretraining_tp": 1, "rms_norm_eps": 1e-05,
    "rope_scaling": {"factor": 32.0, "high_freq_factor": 4.0, "low_freq_factor": 1.0,
                     "original_max_position_embeddings": 8192, "rope_type": "llama3"},
    "rope_theta": 500000.0, "tie_word_embeddings": true, "torch_dtype": "bfloat16",
    "transformers_version": "4.45.0.dev0", "use_cache": true, "vocab_size": 128256})");
}

TEST(ModelConfig, Llama32Form4x) {
  ModelConfig c = parse_ok(llama32_1b());
  EXPECT_EQ(c.hidden_size, 2048);
  EXPECT_EQ(c.n_layers, 16);
  EXPECT_EQ(c.n_kv_heads, 8);
  EXPECT_EQ(c.head_dim, 64);
  EXPECT_EQ(c.vocab_size, 128256);
  EXPECT_EQ(c.dtype, DType::BF16);
  EXPECT_EQ(c.rope_type, "llama3");
  EXPECT_DOUBLE_EQ(c.rope.theta, 500000.0);
  EXPECT_DOUBLE_EQ(c.rope.llama3_factor, 32.0);
  EXPECT_DOUBLE_EQ(c.rope.llama3_original_max_position, 8192.0);
  EXPECT_EQ(c.rope.rotary_dim, 64);
  EXPECT_EQ(c.bos_token_ids, std::vector<int32_t>{128000});
  EXPECT_EQ(c.eos_token_ids, (std::vector<int32_t>{128001, 128008, 128009}));
  EXPECT_TRUE(c.tie_word_embeddings);
}

TEST(ModelConfig, Qwen25Form4x) {
  ModelConfig c = parse_ok(json::parse(R"({
    "architectures": ["Qwen2ForCausalLM"], "bos_token_id": 151643, "eos_token_id": 151645, "hidden_act": "silu",
    "hidden_size": 896, "intermediate_size": 4864, "max_position_embeddings": 32768, "max_window_layers": 21,
    "model_type": "qwen2", "num_attention_heads": 14, "num_hidden_layers": 24, "num_key_value_heads": 2,
    "rms_norm_eps": 1e-06, "rope_theta": 1000000.0, "sliding_window": 32768, "tie_word_embeddings": true,
    "torch_dtype": "bfloat16", "use_cache": true, "use_sliding_window": false, "vocab_size": 151936})"));
  EXPECT_EQ(c.head_dim, 64);  // 896 / 14
  EXPECT_DOUBLE_EQ(c.rope.theta, 1e6);
  EXPECT_EQ(c.rope_type, "default");
  EXPECT_EQ(c.sliding_window, 0);  // use_sliding_window false wins over the size
  EXPECT_TRUE(c.attention_bias);
  EXPECT_EQ(c.eos_token_ids, std::vector<int32_t>{151645});
}

TEST(ModelConfig, Mistral7bForm4x) {
  ModelConfig c = parse_ok(json::parse(R"({
    "architectures": ["MistralForCausalLM"], "bos_token_id": 1, "eos_token_id": 2, "hidden_act": "silu",
    "hidden_size": 4096, "intermediate_size": 14336, "max_position_embeddings": 32768, "model_type": "mistral",
    "num_attention_heads": 32, "num_hidden_layers": 32, "num_key_value_heads": 8, "rms_norm_eps": 1e-05,
    "rope_theta": 10000.0, "rope_scaling": null, "sliding_window": 4096, "tie_word_embeddings": false,
    "torch_dtype": "bfloat16", "vocab_size": 32000})"));
  EXPECT_EQ(c.sliding_window, 4096);
  EXPECT_EQ(c.rope_type, "default");
  EXPECT_EQ(c.head_dim, 128);
  EXPECT_EQ(c.kv_bytes_per_token(2), int64_t(2) * 32 * 8 * 128 * 2);
}

TEST(ModelConfig, LegacyLinearScalingAndDefaults) {
  json j = llama32_1b();
  j["rope_scaling"] = {{"type", "linear"}, {"factor", 2.0}};
  j["torch_dtype"] = "float16";
  j.erase("num_key_value_heads");
  j.erase("head_dim");
  j.erase("tie_word_embeddings");
  j["eos_token_id"] = nullptr;
  ModelConfig c = parse_ok(j);
  EXPECT_EQ(c.rope_type, "linear");
  EXPECT_DOUBLE_EQ(c.rope.linear_factor, 2.0);
  EXPECT_DOUBLE_EQ(c.rope.llama3_factor, 0.0);
  EXPECT_EQ(c.dtype, DType::F16);
  EXPECT_EQ(c.n_kv_heads, 32);
  EXPECT_EQ(c.head_dim, 64);
  EXPECT_FALSE(c.tie_word_embeddings);
  EXPECT_TRUE(c.eos_token_ids.empty());
}

TEST(ModelConfig, PartialRotaryAnd5xDtype) {
  json j = llama32_1b();
  j.erase("rope_scaling");
  j.erase("rope_theta");
  j.erase("torch_dtype");
  j["dtype"] = "float32";
  j["rope_parameters"] = {{"rope_type", "default"}, {"rope_theta", 250000.0}, {"partial_rotary_factor", 0.25}};
  ModelConfig c = parse_ok(j);
  EXPECT_DOUBLE_EQ(c.rope.theta, 250000.0);
  EXPECT_EQ(c.rope.rotary_dim, 16);
  EXPECT_EQ(c.dtype, DType::F32);
}

// Gemma3-style 5.x configs key rope_parameters by layer type; full attention carries the main rope.
TEST(ModelConfig, PerLayerTypeRopeParameters) {
  json j = llama32_1b();
  j.erase("rope_scaling");
  j["rope_parameters"] = {
      {"full_attention", {{"rope_type", "linear"}, {"factor", 8.0}, {"rope_theta", 1e6}}},
      {"sliding_attention", {{"rope_type", "default"}, {"rope_theta", 1e4}}},
  };
  ModelConfig c = parse_ok(j);
  EXPECT_EQ(c.rope_type, "linear");
  EXPECT_DOUBLE_EQ(c.rope.linear_factor, 8.0);
  EXPECT_DOUBLE_EQ(c.rope.theta, 1e6);
}

struct BadConfig {
  const char* what;
  std::string text;
  const char* key;  // the message must name it
};

std::vector<BadConfig> bad_configs() {
  auto edit = [](auto fn) {
    json j = llama32_1b();
    fn(j);
    return j.dump();
  };
  return {
      {"invalid JSON", "{\"hidden_size\": 12,", "invalid JSON"},
      {"not an object", "[1, 2]", "top level"},
      {"missing hidden_size", edit([](json& j) { j.erase("hidden_size"); }), "hidden_size"},
      {"string for int", edit([](json& j) { j["num_hidden_layers"] = "16"; }), "num_hidden_layers"},
      {"float for int", edit([](json& j) { j["vocab_size"] = 1.5; }), "vocab_size"},
      {"heads not divisible", edit([](json& j) { j["num_key_value_heads"] = 5; }), "num_key_value_heads"},
      {"zero heads", edit([](json& j) { j["num_attention_heads"] = 0; }), "num_attention_heads"},
      {"longrope", edit([](json& j) { j["rope_scaling"]["rope_type"] = "longrope"; }), "longrope"},
      {"dynamic 5.x",
       edit([](json& j) { j["rope_parameters"] = {{"rope_type", "dynamic"}, {"rope_theta", 1e4}, {"factor", 2.0}}; }),
       "rope_parameters.rope_type"},
      {"llama3 without factor", edit([](json& j) { j["rope_scaling"].erase("factor"); }), "rope_scaling.factor"},
      {"absurd hidden_size", edit([](json& j) { j["hidden_size"] = int64_t(1) << 21; }), "hidden_size"},
      {"absurd layers", edit([](json& j) { j["num_hidden_layers"] = 20000; }), "num_hidden_layers"},
      {"absurd vocab", edit([](json& j) { j["vocab_size"] = int64_t(1) << 25; }), "vocab_size"},
      {"odd head_dim", edit([](json& j) { j["head_dim"] = 63; }), "head_dim"},
      {"hidden not divisible", edit([](json& j) { j.erase("head_dim"); j["hidden_size"] = 2050; }), "hidden_size"},
      {"bad eos", edit([](json& j) { j["eos_token_id"] = json::array({1, "x"}); }), "eos_token_id"},
      {"bool as string", edit([](json& j) { j["tie_word_embeddings"] = "true"; }), "tie_word_embeddings"},
      {"unknown dtype", edit([](json& j) { j["torch_dtype"] = "int8"; }), "torch_dtype"},
      {"rope_scaling not object", edit([](json& j) { j["rope_scaling"] = 3; }), "rope_scaling"},
      {"negative theta", edit([](json& j) { j["rope_theta"] = -1.0; }), "rope_theta"},
      {"duplicate key", R"({"hidden_size": 64, "hidden_size": 128})", "hidden_size"},
      {"per-layer rope null",
       edit([](json& j) { j["rope_parameters"] = {{"full_attention", nullptr}, {"sliding_attention", json::object()}}; }),
       "rope_parameters.full_attention"},
  };
}

TEST(ModelConfig, MalformedConfigsNameSourceAndKey) {
  for (const BadConfig& c : bad_configs()) {
    auto r = parse_model_config(c.text, "cfg/config.json");
    ASSERT_FALSE(r.is_ok()) << c.what;
    const std::string& msg = r.status().message();
    EXPECT_EQ(msg.rfind("cfg/config.json: ", 0), 0u) << c.what << ": " << msg;
    EXPECT_NE(msg.find(c.key), std::string::npos) << c.what << ": " << msg;
    EXPECT_EQ(msg.find('\n'), std::string::npos) << c.what << ": " << msg;
  }
}

TEST(ModelConfig, LoadFromDirectory) {
  test::TempDir dir;
  auto missing = load_model_config(dir.path());
  ASSERT_FALSE(missing.is_ok());
  EXPECT_NE(missing.status().message().find("config.json"), std::string::npos);
  test::write_file(dir.file("config.json"), llama32_1b().dump(2));
  auto c = load_model_config(dir.path());
  ASSERT_TRUE(c.is_ok()) << c.status().message();
  EXPECT_EQ(c->n_layers, 16);
}

}  // namespace
}  // namespace tern
