// tern quantize --format gguf / tern gguf quantize / gguf info, and the run command on the written file (tokenizer from the metadata).
#include <gtest/gtest.h>

#include <functional>
#include <map>
#include <set>

#include "core/cpu_features.h"
#include "core/mapped_file.h"
#include "core/thread_pool.h"
#include "formats/gguf/gguf_file.h"
#include "model/synth.h"
#include "test_support.h"

namespace tern::test {
namespace {

TEST(CliGguf, QuantizeThenRunAndInfo) {
  TempDir dir;
  const std::string out = dir.file("m.gguf"), model = model_dir("docs-llama-28m");
  auto q = run_tern("gguf quantize -q -m " + model + " -o " + out + " --type Q8_0");
  ASSERT_EQ(q.exit_code, 0) << q.err;
  auto info = run_tern("gguf info " + out);
  ASSERT_EQ(info.exit_code, 0) << info.err;
  EXPECT_NE(info.out.find("blk.0.attn_q.weight"), std::string::npos);
  EXPECT_NE(info.out.find("Q8_0"), std::string::npos);
  EXPECT_NE(info.out.find("tokenizer.ggml.merges"), std::string::npos);
  const std::string prompt = " -p 'The kernel scheduler decides' -n 12 --temp 0 -q -t 1";
  auto a = run_tern("run -m " + out + prompt), b = run_tern("run -m " + model + prompt);
  ASSERT_EQ(a.exit_code, 0) << a.err;
  ASSERT_EQ(b.exit_code, 0) << b.err;
  EXPECT_EQ(a.out, b.out);  // Q8_0 keeps these 12 greedy tokens (as llama.cpp's own Q8_0 does)
}

TEST(CliGguf, BadInputIsAOneLineError) {
  TempDir dir;
  write_file(dir.file("bad.gguf"), std::string("GGUF\x03\0\0\0", 8) + std::string(8, '\xff'));
  auto r = run_tern("run -m " + dir.file("bad.gguf") + " -p hi");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("bad.gguf"), std::string::npos) << r.err;
  auto t = run_tern("gguf quantize -m " + model_dir("docs-llama-28m") + " -o " + dir.file("x.gguf") + " --type IQ4_NL");
  EXPECT_EQ(t.exit_code, 1);
  EXPECT_NE(t.err.find("not supported"), std::string::npos) << t.err;
  auto u = run_tern("gguf quantize -m " + model_dir("docs-llama-28m") + " -o " + dir.file("x.gguf") + " --type Q7_K");
  EXPECT_EQ(u.exit_code, 1);
  EXPECT_NE(u.err.find("unknown GGUF type 'Q7_K'"), std::string::npos) << u.err;
}

std::map<std::string, std::string> tensor_types(const std::string& path, uint32_t* file_type) {
  auto g = GgufFile::open(path);
  EXPECT_TRUE(g.is_ok()) << g.status().message();
  std::map<std::string, std::string> out;
  if (!g.is_ok()) return out;
  for (const auto& t : g->tensors())
    if (t.shape().size() == 2) out[t.name] = gguf_traits(t.type).name;
  const GgufValue* ft = g->find("general.file_type");
  *file_type = ft ? uint32_t(ft->i) : 999;
  return out;
}

// llama.cpp's per-tensor choices on a model with enough layers for every rule (16, as Llama-3.2-1B):
// rows of 256 so no shape fallback interferes, a separate output.weight.
TEST(CliGguf, MixesGiveEachTensorTheTypeLlamaQuantizeGivesIt) {
  TempDir dir;
  SynthShape shape{"mix16", "LlamaForCausalLM", "llama", 256, 512, 512, 2048, 16, 4, 1, 64};
  shape.bos = 0, shape.eos = 1;
  ThreadPool pool(2);
  ExecContext ctx(pool, CpuFeatures::detect());
  SynthOptions so;
  so.out_dir = dir.file("m");
  ASSERT_TRUE(synthesize(ctx, shape, so).is_ok());
  const std::set<int> more = {0, 1, 4, 7, 10, 13, 14, 15};  // first / last eighth, every third layer
  struct Want {
    const char* mix;
    uint32_t file_type;
    const char* base;
    std::function<std::string(int, const std::string&)> layer;  // tensor kind -> type, "" = base
    const char* output;
  };
  const std::vector<Want> wants = {
      {"Q4_K_M", 15, "Q4_K", [&](int i, const std::string& k) { return (k == "attn_v" || k == "ffn_down") && more.count(i) ? "Q6_K" : ""; }, "Q6_K"},
      {"Q5_K_M", 17, "Q5_K", [&](int i, const std::string& k) { return (k == "attn_v" || k == "ffn_down") && more.count(i) ? "Q6_K" : ""; }, "Q6_K"},
      {"Q4_K_S", 14, "Q4_K", [](int i, const std::string& k) { return (k == "attn_v" && i < 4) || (k == "ffn_down" && i < 2) ? "Q5_K" : ""; }, "Q6_K"},
      {"Q5_K_S", 16, "Q5_K", [](int, const std::string&) { return ""; }, "Q6_K"},
      {"Q3_K_M", 12, "Q3_K", [](int i, const std::string& k) {
         if (k == "attn_v") return i < 2 ? "Q5_K" : "Q4_K";
         if (k == "ffn_down") return i < 1 ? "Q5_K" : "Q4_K";
         return k == "attn_output" ? "Q4_K" : ""; }, "Q6_K"},
      {"Q6_K", 18, "Q6_K", [](int, const std::string&) { return ""; }, "Q6_K"},
      {"Q4_0", 2, "Q4_0", [](int, const std::string&) { return ""; }, "Q6_K"},
  };
  for (const auto& w : wants) {
    const std::string out = dir.file(std::string(w.mix) + ".gguf");
    auto q = run_tern("quantize -m " + so.out_dir + " -o " + out + " --format gguf --type " + w.mix);
    ASSERT_EQ(q.exit_code, 0) << q.err;
    EXPECT_NE(q.err.find(w.mix), std::string::npos) << "the summary names the mix: " << q.err;
    uint32_t ft = 0;
    const auto types = tensor_types(out, &ft);
    EXPECT_EQ(ft, w.file_type) << w.mix;
    ASSERT_EQ(types.size(), 2u + 16u * 7u) << w.mix;
    EXPECT_EQ(types.at("output.weight"), w.output) << w.mix;
    EXPECT_EQ(types.at("token_embd.weight"), w.base) << w.mix << ": an untied embedding keeps the base";
    for (int i = 0; i < 16; ++i) {
      for (std::string k : {"attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate", "ffn_up", "ffn_down"}) {
        const std::string name = "blk." + std::to_string(i) + "." + k + ".weight", want = w.layer(i, k);
        EXPECT_EQ(types.at(name), want.empty() ? w.base : want) << w.mix << " " << name;
      }
    }
  }
  // --pure: one type everywhere, the file still says the mix asked for (as llama-quantize --pure).
  auto p = run_tern("gguf quantize -q -m " + so.out_dir + " -o " + dir.file("pure.gguf") + " --type Q4_K_M --pure");
  ASSERT_EQ(p.exit_code, 0) << p.err;
  uint32_t ft = 0;
  for (const auto& [name, type] : tensor_types(dir.file("pure.gguf"), &ft)) EXPECT_EQ(type, "Q4_K") << name;
  EXPECT_EQ(ft, 15u);
}

// docs-llama-28m (8 layers, tied embedding, ffn_down rows of 1,408): the default mix is Q4_K_M, --type Q4_K
// is its alias (llama-quantize's), the tied embedding is the output at Q6_K, ffn_down falls back
// (Q6_K -> Q8_0, Q4_K -> Q5_0), and tern runs the file.
TEST(CliGguf, DefaultIsQ4KMOnATiedModel) {
  TempDir dir;
  const std::string model = model_dir("docs-llama-28m");
  auto a = run_tern("quantize -m " + model + " -o " + dir.file("a.gguf") + " --format gguf");
  ASSERT_EQ(a.exit_code, 0) << a.err;
  auto b = run_tern("gguf quantize -q -m " + model + " -o " + dir.file("b.gguf") + " --type Q4_K");
  ASSERT_EQ(b.exit_code, 0) << b.err;
  EXPECT_EQ(*read_text_file(dir.file("a.gguf")), *read_text_file(dir.file("b.gguf")));
  uint32_t ft = 0;
  const auto types = tensor_types(dir.file("a.gguf"), &ft);
  EXPECT_EQ(ft, 15u);
  EXPECT_EQ(types.count("output.weight"), 0u);
  EXPECT_EQ(types.at("token_embd.weight"), "Q6_K");
  for (int i = 0; i < 8; ++i) {
    const bool more = i == 0 || i == 3 || i == 6 || i == 7;
    const std::string b = "blk." + std::to_string(i) + ".";
    EXPECT_EQ(types.at(b + "attn_v.weight"), more ? "Q6_K" : "Q4_K") << i;
    EXPECT_EQ(types.at(b + "ffn_down.weight"), more ? "Q8_0" : "Q5_0") << i;
    EXPECT_EQ(types.at(b + "ffn_up.weight"), "Q4_K") << i;
  }
  auto r = run_tern("run -m " + dir.file("a.gguf") + " -p 'The kernel scheduler decides' -n 4 --temp 0 -q -t 1");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_FALSE(r.out.empty());
}

TEST(CliGguf, QuantizeFormatGgufWritesTheSameFileAsGgufQuantize) {
  TempDir dir;
  const std::string model = model_dir("docs-llama-28m");
  auto a = run_tern("quantize -m " + model + " -o " + dir.file("a.gguf") + " --format gguf --type Q4_0");
  ASSERT_EQ(a.exit_code, 0) << a.err;
  EXPECT_NE(a.err.find("ETA"), std::string::npos) << "progress with ETA on stderr";
  auto b = run_tern("gguf quantize -q -m " + model + " -o " + dir.file("b.gguf") + " --type Q4_0");
  ASSERT_EQ(b.exit_code, 0) << b.err;
  EXPECT_EQ(*read_text_file(dir.file("a.gguf")), *read_text_file(dir.file("b.gguf")));
  auto wrong = run_tern("quantize -m " + model + " -o " + dir.file("c.gguf") + " --format gguf --type Q4_0 --group 32");
  EXPECT_EQ(wrong.exit_code, 1);
  EXPECT_NE(wrong.err.find("give only --type"), std::string::npos) << wrong.err;
  auto no_format = run_tern("quantize -m " + model + " -o " + dir.file("d") + " --type Q4_K");
  EXPECT_EQ(no_format.exit_code, 1);
  EXPECT_NE(no_format.err.find("--format gguf"), std::string::npos) << no_format.err;
  auto recipe = run_tern("quantize -m " + model + " -o " + dir.file("e.gguf") + " --format gguf --mse-clip");
  EXPECT_EQ(recipe.exit_code, 1) << "checkpoint recipe switches do not apply to GGUF";
  EXPECT_NE(recipe.err.find("give only --type"), std::string::npos) << recipe.err;
  auto pure = run_tern("quantize -m " + model + " -o " + dir.file("f") + " --pure");
  EXPECT_EQ(pure.exit_code, 1);
  EXPECT_NE(pure.err.find("--pure applies to --format gguf"), std::string::npos) << pure.err;
}

}  // namespace
}  // namespace tern::test
