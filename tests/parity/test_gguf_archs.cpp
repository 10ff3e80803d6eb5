// GGUF export + load for every architecture llama.cpp defines and tern maps (formats/gguf/gguf_arch.h),
// on ../shared/models/tiny-archs/<arch> against transformers' reference.json:
//   - F32 export -> load: last-position logits within 1e-4 (the bytes are the checkpoint's, only
//     renamed, stacked and permuted, so the tiny-archs tolerance holds) and greedy16 identical;
//   - F16 / Q8_0 exports stay close to the safetensors model (tolerances below);
//   - the file is laid out as llama.cpp reads it (tensor names, stacked expert shapes, keys);
//   - a file that lacks an architecture-specific key or tensor is a one-line error naming the file
//     and the key / tensor.
#include <fmt/format.h>
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <filesystem>

#include "compress/gguf_quantize.h"
#include "formats/gguf/gguf_writer.h"
#include "model_test_util.h"
#include "test_support.h"

namespace tern::test {
namespace {

struct LastLogitsError {
  double max_abs = 0;     // over the vocabulary, worst sequence
  bool same_argmax = true;
};

LastLogitsError compare_last_logits(const Model& m, const nlohmann::json& ref) {
  ThreadPool pool(2);
  ExecContext ctx(pool, CpuFeatures::detect());
  const int64_t vocab = m.config().vocab_size;
  LastLogitsError out;
  for (const auto& seq : ref["sequences"]) {
    const auto ids = seq["ids"].get<std::vector<int32_t>>();
    const auto logits = all_logits(m, ctx, ids);
    if (logits.size() != ids.size() * size_t(vocab)) return {INFINITY, false};
    const auto want = seq["last_logits"].get<std::vector<double>>();
    const float* last = logits.data() + (ids.size() - 1) * size_t(vocab);
    int64_t best = 0, want_best = 0;
    for (int64_t v = 0; v < vocab; ++v) {
      out.max_abs = std::max(out.max_abs, std::fabs(last[v] - want[size_t(v)]));
      if (last[v] > last[best]) best = v;
      if (want[size_t(v)] > want[size_t(want_best)]) want_best = v;
    }
    out.same_argmax = out.same_argmax && best == want_best;

  }
  return out;
}

Result<std::unique_ptr<Model>> export_and_load(const std::string& arch, const std::string& path, GgufType type) {
  TERN_ASSIGN_OR_RETURN(auto st, Model::load(tiny_arch_dir(arch)));
  TERN_RETURN_IF_ERROR(quantize_to_gguf(*st, path, type));
  TERN_ASSIGN_OR_RETURN(auto g, Model::load(path));
  match_reference_attention(*g, arch);
  return g;
}

class GgufArchs : public ::testing::TestWithParam<std::string> {};

TEST_P(GgufArchs, F32RoundTripMatchesTransformers) {
  TempDir dir;
  auto g = export_and_load(GetParam(), dir.file("m.gguf"), GgufType::F32);
  ASSERT_TRUE(g.is_ok()) << g.status().message();
  const auto ref = load_json(tiny_arch_dir(GetParam()) + "/reference.json");
  const LastLogitsError e = compare_last_logits(**g, ref);
  EXPECT_LE(e.max_abs, 1e-4);
  ThreadPool pool(2);
  ExecContext ctx(pool, CpuFeatures::detect());
  for (const auto& seq : ref["sequences"]) {
    const auto ids = seq["ids"].get<std::vector<int32_t>>();
    EXPECT_EQ(greedy(**g, ctx, ids, 16), seq["greedy16"].get<std::vector<int32_t>>()) << "n=" << ids.size();
  }
}

// Against the safetensors model at every position of every reference sequence. F16 rounds each weight
// by 2^-11 relative, Q8_0 by ~1/254 of a block's largest weight; in these random tiny MoE models that
// can flip a near-tied expert choice and move one position's logits by ~1 (seen: qwen3_moe F16 0.8,
// mixtral Q8_0 1.2 at one of 340 positions, the same at every chunk size), so the bounds are on the
// mean absolute difference (measured: F16 <= 0.0016, Q8_0 <= 0.028) and top-1 agreement (F16 >= 0.99,
// Q8_0 >= 0.944), with about 3x / 0.04 margin.
TEST_P(GgufArchs, F16AndQ8_0StayClose) {
  TempDir dir;
  const auto ref = load_json(tiny_arch_dir(GetParam()) + "/reference.json");
  auto st = Model::load(tiny_arch_dir(GetParam()));
  ASSERT_TRUE(st.is_ok()) << st.status().message();
  match_reference_attention(**st, GetParam());
  ThreadPool pool(2);
  ExecContext ctx(pool, CpuFeatures::detect());
  const int64_t vocab = (*st)->config().vocab_size;
  for (GgufType type : {GgufType::F16, GgufType::Q8_0}) {
    auto g = export_and_load(GetParam(), dir.file("m.gguf"), type);
    ASSERT_TRUE(g.is_ok()) << g.status().message();
    double sum_abs = 0;
    size_t agree = 0, total = 0;
    for (const auto& seq : ref["sequences"]) {
      const auto ids = seq["ids"].get<std::vector<int32_t>>();
      const auto a = all_logits(**st, ctx, ids), b = all_logits(**g, ctx, ids);
      ASSERT_EQ(a.size(), b.size());
      for (size_t p = 0; p < ids.size(); ++p) {
        const float* x = a.data() + p * size_t(vocab);
        const float* y = b.data() + p * size_t(vocab);
        for (int64_t v = 0; v < vocab; ++v) sum_abs += std::fabs(x[v] - y[v]);
        agree += std::max_element(x, x + vocab) - x == std::max_element(y, y + vocab) - y;
        ++total;
      }
    }
    const double mean_abs = sum_abs / double(total * size_t(vocab));
    EXPECT_LE(mean_abs, type == GgufType::F16 ? 0.005 : 0.05) << gguf_traits(type).name;
    EXPECT_GE(double(agree) / double(total), type == GgufType::F16 ? 0.97 : 0.9) << gguf_traits(type).name;
  }
}

INSTANTIATE_TEST_SUITE_P(Archs, GgufArchs, ::testing::Values("qwen3_moe", "mixtral", "qwen2_moe", "gpt2", "gemma2", "phi3",
                                                             "glm4", "deepseek_v3", "llama", "qwen3"));

// Rewrites a GGUF file without one metadata key or tensor.
void rewrite_without(const std::string& src, const std::string& dst, const std::string& key, const std::string& tensor) {
  auto g = GgufFile::open(src);
  ASSERT_TRUE(g.is_ok()) << g.status().message();
  std::vector<std::pair<std::string, GgufValue>> kv;
  for (const auto& [k, v] : g->metadata()) {
    if (k != key) kv.emplace_back(k, v);
  }
  std::vector<GgufTensorToWrite> t;
  for (const GgufTensor& x : g->tensors()) {
    if (x.name == tensor) continue;
    t.push_back({x.name, x.type, x.shape(), [&x](uint8_t* dst) { std::memcpy(dst, x.data, x.bytes); }});
  }
  ASSERT_TRUE(write_gguf(dst, kv, t).is_ok());
}

void expect_error_naming(const std::string& path, const std::string& what) {
  auto m = Model::load(path);
  ASSERT_FALSE(m.is_ok()) << "loaded without " << what;
  const std::string msg = m.status().message();
  EXPECT_NE(msg.find(path), std::string::npos) << msg;
  EXPECT_NE(msg.find(what), std::string::npos) << msg;
  EXPECT_EQ(msg.find('\n'), std::string::npos) << msg;
}

TEST(GgufArchsBadInput, Qwen3MoeLayoutAndMissingPieces) {
  TempDir dir;
  auto st = Model::load(tiny_arch_dir("qwen3_moe"));
  ASSERT_TRUE(st.is_ok()) << st.status().message();
  const std::string path = dir.file("m.gguf");
  ASSERT_TRUE(quantize_to_gguf(**st, path, GgufType::Q8_0).is_ok());
  auto g = GgufFile::open(path);
  ASSERT_TRUE(g.is_ok());
  // llama.cpp's layout (src/models/qwen3moe.cpp): experts stacked, ne = {n_embd, n_ff_exp, n_expert}.
  const ModelConfig& c = (*st)->config();
  const GgufTensor* gate = g->tensor("blk.1.ffn_gate_exps.weight");
  ASSERT_NE(gate, nullptr);
  EXPECT_EQ(gate->ne, (std::vector<int64_t>{c.hidden_size, c.moe.expert_intermediate, c.moe.n_experts}));
  const GgufTensor* down = g->tensor("blk.1.ffn_down_exps.weight");
  ASSERT_NE(down, nullptr);
  EXPECT_EQ(down->ne, (std::vector<int64_t>{c.moe.expert_intermediate, c.hidden_size, c.moe.n_experts}));
  const GgufTensor* router = g->tensor("blk.0.ffn_gate_inp.weight");
  ASSERT_NE(router, nullptr);
  EXPECT_EQ(router->type, GgufType::F32);
  EXPECT_NE(g->tensor("blk.0.attn_k_norm.weight"), nullptr);
  EXPECT_EQ(g->get_int("qwen3moe.expert_count", 0, 1000).value(), c.moe.n_experts);
  EXPECT_EQ(g->get_int("qwen3moe.expert_used_count", 0, 1000).value(), c.moe.top_k);
  EXPECT_EQ(g->get_int("qwen3moe.expert_feed_forward_length", 0, 1 << 20).value(), c.moe.expert_intermediate);
  EXPECT_EQ(g->get_string("general.architecture").value(), "qwen3moe");

  const std::string no_key = dir.file("no_key.gguf");
  rewrite_without(path, no_key, "qwen3moe.expert_feed_forward_length", "");
  expect_error_naming(no_key, "qwen3moe.expert_feed_forward_length");
  const std::string no_tensor = dir.file("no_tensor.gguf");
  rewrite_without(path, no_tensor, "", "blk.1.ffn_up_exps.weight");
  expect_error_naming(no_tensor, "model.layers.1.mlp.experts.0.up_proj.weight");
}

// DeepSeek's yarn rope scaling survives the round trip (rope.scaling.* keys, mscale_all_dim as
// 0.1 x yarn_log_multiplier): the GGUF model computes what the safetensors one does, at every position
// of a sequence longer than original_max_position_embeddings.
TEST(GgufArchs, DeepseekYarnRoundTrip) {
  TempDir dir;
  auto cfg = load_json(tiny_arch_dir("deepseek_v3") + "/config.json");
  cfg.erase("rope_parameters");
  cfg["rope_theta"] = 10000.0;
  cfg["rope_scaling"] = {{"type", "yarn"}, {"factor", 4.0}, {"original_max_position_embeddings", 64},
                         {"beta_fast", 32}, {"beta_slow", 1}, {"mscale", 1.0}, {"mscale_all_dim", 1.0}};
  write_file(dir.file("config.json"), cfg.dump());
  std::filesystem::copy_file(tiny_arch_dir("deepseek_v3") + "/model.safetensors", dir.file("model.safetensors"));
  auto st = Model::load(dir.path());
  ASSERT_TRUE(st.is_ok()) << st.status().message();
  ASSERT_EQ((*st)->config().rope_type, "yarn");
  const std::string path = dir.file("m.gguf");
  ASSERT_TRUE(quantize_to_gguf(**st, path, GgufType::F32).is_ok());
  auto g = Model::load(path);
  ASSERT_TRUE(g.is_ok()) << g.status().message();
  EXPECT_EQ((*g)->config().rope_type, "yarn");
  EXPECT_DOUBLE_EQ((*g)->config().mla.softmax_scale, (*st)->config().mla.softmax_scale);
  ThreadPool pool(2);
  ExecContext ctx(pool, CpuFeatures::detect());
  const auto ids = load_json(tiny_arch_dir("deepseek_v3") + "/reference.json")["sequences"][2]["ids"].get<std::vector<int32_t>>();
  ASSERT_GT(ids.size(), 64u);
  const auto a = all_logits(**st, ctx, ids), b = all_logits(**g, ctx, ids);
  ASSERT_EQ(a.size(), b.size());
  double err = 0;
  for (size_t i = 0; i < a.size(); ++i) err = std::max(err, double(std::fabs(a[i] - b[i])));
  EXPECT_LE(err, 1e-4);
  // mscale 2 with mscale_all_dim 1 is a yarn llama.cpp cannot run: refused by name.
  cfg["rope_scaling"]["mscale"] = 2.0;
  write_file(dir.file("config.json"), cfg.dump());
  auto other = Model::load(dir.path());
  ASSERT_TRUE(other.is_ok()) << other.status().message();
  Status s = quantize_to_gguf(**other, dir.file("x.gguf"), GgufType::F32);
  ASSERT_FALSE(s.is_ok());
  EXPECT_NE(s.message().find("rope_scaling.mscale"), std::string::npos) << s.message();
}

// Mixtral as llama.cpp's converter wrote it before stacked experts: blk.N.ffn_{gate,up,down}.E.weight.
TEST(GgufArchs, LegacyPerExpertMixtralMatchesTransformers) {
  TempDir dir;
  auto st = Model::load(tiny_arch_dir("mixtral"));
  ASSERT_TRUE(st.is_ok());
  const std::string stacked = dir.file("stacked.gguf"), legacy = dir.file("legacy.gguf");
  ASSERT_TRUE(quantize_to_gguf(**st, stacked, GgufType::F32).is_ok());
  auto g = GgufFile::open(stacked);
  ASSERT_TRUE(g.is_ok());
  std::vector<GgufTensorToWrite> t;
  int split = 0;
  for (const GgufTensor& x : g->tensors()) {
    int layer = -1;
    char kind[8] = {};
    if (std::sscanf(x.name.c_str(), "blk.%d.ffn_%4[a-z]", &layer, kind) == 2 &&
        x.name == fmt::format("blk.{}.ffn_{}_exps.weight", layer, kind) && x.ne.size() == 3) {
      const int64_t n = x.ne[2];
      const size_t each = x.bytes / size_t(n);
      for (int64_t e = 0; e < n; ++e) {
        const auto* src = static_cast<const uint8_t*>(x.data) + size_t(e) * each;
        t.push_back({fmt::format("blk.{}.ffn_{}.{}.weight", layer, kind, e), x.type, {x.ne[1], x.ne[0]},
                     [src, each](uint8_t* dst) { std::memcpy(dst, src, each); }});
      }
      ++split;
      continue;
    }
    t.push_back({x.name, x.type, x.shape(), [&x](uint8_t* dst) { std::memcpy(dst, x.data, x.bytes); }});
  }
  EXPECT_EQ(split, 3 * (*st)->config().n_layers);
  ASSERT_TRUE(write_gguf(legacy, g->metadata(), t).is_ok());
  auto m = Model::load(legacy);
  ASSERT_TRUE(m.is_ok()) << m.status().message();
  EXPECT_LE(compare_last_logits(**m, load_json(tiny_arch_dir("mixtral") + "/reference.json")).max_abs, 1e-4);
}

// Per architecture: a file without one of its own keys or tensors is a one-line error naming the file
// and what is missing (the GGUF key; the Hugging Face tensor and its GGUF name).
struct Missing {
  const char* arch;
  const char* key;     // dropped metadata key
  const char* tensor;  // dropped tensor
  const char* named;   // what the tensor error must name
};

TEST(GgufArchsBadInput, MissingArchitectureKeyOrTensorIsNamed) {
  const Missing cases[] = {
      {"mixtral", "llama.expert_used_count", "blk.1.ffn_gate_inp.weight", "blk.1.ffn_gate_inp.weight"},
      {"qwen2_moe", "qwen2moe.expert_shared_feed_forward_length", "blk.0.ffn_gate_inp_shexp.weight",
       "blk.0.ffn_gate_inp_shexp.weight"},
      {"gpt2", "gpt2.attention.head_count", "position_embd.weight", "position_embd.weight"},
      {"gemma2", "gemma2.embedding_length", "blk.1.post_ffw_norm.weight", "blk.1.post_ffw_norm.weight"},
      {"phi3", "phi3.feed_forward_length", "blk.0.attn_qkv.weight", "blk.0.attn_qkv.weight"},
      {"glm4", "glm4.block_count", "blk.1.post_attention_norm.weight", "blk.1.post_attention_norm.weight"},
      {"deepseek_v3", "deepseek2.attention.kv_lora_rank", "blk.1.attn_v_b.weight", "blk.1.attn_v_b.weight"},
      {"deepseek_v3", "deepseek2.expert_shared_count", "blk.1.ffn_up_shexp.weight", "blk.1.ffn_up_shexp.weight"},
  };
  for (const Missing& m : cases) {
    SCOPED_TRACE(m.arch);
    TempDir dir;
    auto st = Model::load(tiny_arch_dir(m.arch));
    ASSERT_TRUE(st.is_ok()) << st.status().message();
    const std::string path = dir.file("m.gguf");
    ASSERT_TRUE(quantize_to_gguf(**st, path, GgufType::Q8_0).is_ok());
    ASSERT_TRUE(Model::load(path).is_ok());
    const std::string no_key = dir.file("no_key.gguf"), no_tensor = dir.file("no_tensor.gguf");
    rewrite_without(path, no_key, m.key, "");
    expect_error_naming(no_key, m.key);
    rewrite_without(path, no_tensor, "", m.tensor);
    expect_error_naming(no_tensor, m.named);
  }
}

// What llama.cpp's graph for the architecture cannot express is refused at export, by name.
TEST(GgufArchsBadInput, ExportRefusesWhatLlamaCppCannotRun) {
  TempDir dir;
  auto qwen3_moe = Model::load(tiny_arch_dir("qwen3_moe"));
  ASSERT_TRUE(qwen3_moe.is_ok());
  auto cfg = load_json(tiny_arch_dir("qwen3_moe") + "/config.json");
  cfg["norm_topk_prob"] = false;
  for (const char* f : {"model.safetensors", "reference.json"}) {
    std::filesystem::copy_file(tiny_arch_dir("qwen3_moe") + "/" + f, dir.file(f));
  }
  write_file(dir.file("config.json"), cfg.dump());
  auto changed = Model::load(dir.path());
  ASSERT_TRUE(changed.is_ok()) << changed.status().message();
  Status s = quantize_to_gguf(**changed, dir.file("m.gguf"), GgufType::F16);
  ASSERT_FALSE(s.is_ok());
  EXPECT_NE(s.message().find("norm_topk_prob=false"), std::string::npos) << s.message();
}

}  // namespace
}  // namespace tern::test
