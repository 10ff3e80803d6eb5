// Loading the dense architectures beyond the Llama shape (GPT-2, Gemma 2, Phi-3, GLM-4): the config
// fields they add, the blocks each binds, and the bad inputs that must be one-line errors naming the
// file and the field or tensor.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "compress/model_linears.h"
#include "core/mapped_file.h"
#include "formats/model_config.h"
#include "formats/safetensors.h"
#include "model/model.h"
#include "test_support.h"

namespace tern {
namespace {

using nlohmann::json;

json tiny_config(const std::string& arch) {
  auto text = read_text_file(test::tiny_arch_dir(arch) + "/config.json");
  EXPECT_TRUE(text.is_ok());
  return json::parse(*text);
}

std::string parse_error(const json& j) {
  auto r = parse_model_config(j.dump(), "fixture.json");
  EXPECT_FALSE(r.is_ok()) << j.dump();
  return r.is_ok() ? "" : r.status().message();
}

TEST(DenseArchConfig, FieldsOfTheTinyCheckpoints) {
  auto gemma = load_model_config(test::tiny_arch_dir("gemma2"));
  ASSERT_TRUE(gemma.is_ok()) << gemma.status().message();
  EXPECT_EQ(gemma->hidden_act, "gelu_pytorch_tanh");
  EXPECT_EQ(gemma->attn_logit_softcapping, 50.0);
  EXPECT_EQ(gemma->final_logit_softcapping, 30.0);
  EXPECT_EQ(gemma->query_pre_attn_scalar, 16.0);
  EXPECT_EQ(gemma->layer_types, (std::vector<std::string>{"sliding_attention", "full_attention"}));
  auto glm = load_model_config(test::tiny_arch_dir("glm4"));
  ASSERT_TRUE(glm.is_ok());
  EXPECT_EQ(glm->rope.rotary_dim, 8);  // partial_rotary_factor 0.5 of head_dim 16
  auto gpt2 = load_model_config(test::tiny_arch_dir("gpt2"));
  ASSERT_TRUE(gpt2.is_ok());
  EXPECT_EQ(gpt2->hidden_act, "gelu_new");
  EXPECT_TRUE(gpt2->scale_attn_weights);
  // GPT-2 and Gemma configs tie the LM head when they do not say (their config classes' default).
  json j = tiny_config("gpt2");
  j.erase("tie_word_embeddings");
  auto untold = parse_model_config(j.dump(), "fixture.json");
  ASSERT_TRUE(untold.is_ok());
  EXPECT_TRUE(untold->tie_word_embeddings);
}

TEST(DenseArchConfig, BadFieldsNameFileAndField) {
  struct Case {
    const char* arch;
    const char* key;
    json value;
    const char* expect;  // in the message, besides "fixture.json"
  };
  const Case cases[] = {
      {"gemma2", "hidden_activation", "gelu", "hidden_activation"},  // erf GELU: no kernel
      {"phi3", "hidden_act", "relu2", "hidden_act"},
      {"gpt2", "activation_function", "quick_gelu", "activation_function"},
      {"gemma2", "layer_types", json::array({"sliding_attention"}), "layer_types"},
      {"gemma2", "layer_types", json::array({"sliding_attention", "chunked_attention"}), "layer_types[1]"},
      {"gemma2", "attn_logit_softcapping", -1.0, "attn_logit_softcapping"},
      {"gemma2", "query_pre_attn_scalar", 0, "query_pre_attn_scalar"},
      {"gpt2", "scale_attn_by_inverse_layer_idx", true, "scale_attn_by_inverse_layer_idx"},
      {"gpt2", "add_cross_attention", true, "add_cross_attention"},
      {"glm4", "partial_rotary_factor", 2.0, "partial_rotary_factor"},  // rotary dim larger than the head
  };
  for (const Case& c : cases) {
    json j = tiny_config(c.arch);
    j[c.key] = c.value;
    if (std::string(c.key) == "partial_rotary_factor") j["rope_parameters"].erase("partial_rotary_factor");
    const std::string msg = parse_error(j);
    EXPECT_NE(msg.find("fixture.json"), std::string::npos) << msg;
    EXPECT_NE(msg.find(c.expect), std::string::npos) << msg;
    EXPECT_EQ(msg.find('\n'), std::string::npos) << "one line: " << msg;
  }
  // A sliding layer needs a window.
  json j = tiny_config("gemma2");
  j["sliding_window"] = nullptr;
  EXPECT_NE(parse_error(j).find("layer_types[0]"), std::string::npos);
}

TEST(DenseArchLoad, BlocksEachArchitectureBinds) {
  auto gpt2 = Model::load(test::tiny_arch_dir("gpt2"));
  ASSERT_TRUE(gpt2.is_ok()) << gpt2.status().message();
  const TransformerWeights& g = (*gpt2)->weights();
  EXPECT_EQ(g.pos_embed.rows, 1024);
  EXPECT_EQ(g.final_norm.kind, NormKind::kLayer);
  EXPECT_EQ(g.layers[0].attn.rope, RopeLayout::kNone);
  EXPECT_EQ(g.layers[0].attn.q.rows, 64);  // c_attn [64, 192] transposed and split
  EXPECT_EQ(g.layers[0].attn.q.cols, 64);
  EXPECT_EQ(g.layers[0].attn.o_bias.size(), 64u);
  EXPECT_FALSE(g.layers[0].mlp.gated);
  EXPECT_EQ(g.layers[0].mlp.up.rows, 256);
  EXPECT_EQ(g.lm_head.data, g.embed.data);

  auto gemma = Model::load(test::tiny_arch_dir("gemma2"));
  ASSERT_TRUE(gemma.is_ok()) << gemma.status().message();
  const TransformerWeights& m = (*gemma)->weights();
  EXPECT_EQ(m.embed_scale, 8.f);
  EXPECT_EQ(m.layers[0].attn.sliding_window, 64);
  EXPECT_EQ(m.layers[1].attn.sliding_window, 0);
  EXPECT_TRUE(m.layers[0].attn_out_norm.present());
  EXPECT_TRUE(m.layers[0].ffn_out_norm.present());
  EXPECT_EQ(m.layers[0].attn_norm.stored_offset, 1.f);
  EXPECT_EQ(m.layers[0].mlp.act, Activation::kGeluTanh);

  auto glm = Model::load(test::tiny_arch_dir("glm4"));
  ASSERT_TRUE(glm.is_ok()) << glm.status().message();
  EXPECT_EQ((*glm)->weights().layers[0].attn.rope, RopeLayout::kInterleaved);
  EXPECT_EQ((*glm)->rope_inv_freq().size(), 4u);
  EXPECT_EQ((*glm)->weights().layers[0].mlp.gate.rows, 160);  // gate_up_proj [320, 64] split

  auto phi = Model::load(test::tiny_arch_dir("phi3"));
  ASSERT_TRUE(phi.is_ok()) << phi.status().message();
  EXPECT_EQ((*phi)->weights().layers[0].attn.k.rows, 32);  // qkv_proj [128, 64] = q 64 + k 32 + v 32
}

// A copy of a tiny checkpoint with one tensor reshaped: loading must fail naming that tensor.
std::string load_error_with(const std::string& arch, const std::string& tensor, std::vector<int64_t> shape) {
  test::TempDir dir;
  std::filesystem::copy_file(test::tiny_arch_dir(arch) + "/config.json", dir.file("config.json"));
  auto store = SafetensorsStore::open_dir(test::tiny_arch_dir(arch));
  EXPECT_TRUE(store.is_ok());
  std::vector<TensorToWrite> out;
  std::vector<std::vector<float>> keep;
  for (const auto& t : store->tensors()) {
    TensorToWrite w{t.name, t.dtype, t.shape, t.data, t.bytes};
    if (t.name == tensor) {
      int64_t n = 1;
      for (int64_t d : shape) n *= d;
      keep.emplace_back(size_t(n), 0.f);
      w.shape = shape, w.data = keep.back().data(), w.bytes = size_t(n) * 4;
    }
    out.push_back(w);
  }
  EXPECT_TRUE(write_safetensors(dir.file("model.safetensors"), out).is_ok());
  auto m = Model::load(dir.path());
  EXPECT_FALSE(m.is_ok());
  return m.is_ok() ? "" : m.status().message();
}

TEST(DenseArchLoad, FusedTensorOfTheWrongSizeNamesIt) {
  for (auto [arch, tensor, shape] :
       {std::tuple{"phi3", "model.layers.1.self_attn.qkv_proj.weight", std::vector<int64_t>{120, 64}},
        std::tuple{"phi3", "model.layers.0.mlp.gate_up_proj.weight", std::vector<int64_t>{160, 64}},
        std::tuple{"glm4", "model.layers.0.mlp.gate_up_proj.weight", std::vector<int64_t>{320, 32}},
        std::tuple{"gpt2", "transformer.h.0.attn.c_attn.weight", std::vector<int64_t>{192, 64}}}) {
    const std::string msg = load_error_with(arch, tensor, shape);
    EXPECT_NE(msg.find(tensor), std::string::npos) << msg;
    EXPECT_NE(msg.find("model.safetensors"), std::string::npos) << msg;
    EXPECT_EQ(msg.find('\n'), std::string::npos) << msg;
  }
}

// RTN, AWQ and GPTQ walk each architecture's own linears (test_quant_archs.cpp); SmoothQuant walks the
// Llama shape only and refuses the others by name.
TEST(DenseArchLoad, SmoothQuantRefusesArchitecturesItDoesNotWalk) {
  for (const char* arch : {"gpt2", "gemma2", "phi3", "glm4"}) {
    auto model = Model::load(test::tiny_arch_dir(arch));
    ASSERT_TRUE(model.is_ok()) << model.status().message();
    const Status s = check_quantizable_architecture(**model);
    ASSERT_FALSE(s.is_ok()) << arch;
    EXPECT_NE(s.message().find((*model)->config().architecture), std::string::npos) << s.message();
    EXPECT_TRUE(quantize_model_rtn(**model, QuantSpec{8, 0, true}).is_ok()) << arch;
  }
  auto llama = Model::load(test::tiny_arch_dir("llama"));
  ASSERT_TRUE(llama.is_ok());
  EXPECT_TRUE(check_quantizable_architecture(**llama).is_ok());
}

}  // namespace
}  // namespace tern
