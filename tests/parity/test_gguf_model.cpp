// GGUF models against their safetensors originals:
//   - docs-llama-28m converted by the llama.cpp peer's converter (bench/peers/llamacpp/hf_to_gguf.py,
//     llama.cpp's layout: interleaved q/k rows, tokenizer metadata) loads in tern with the same logits
//     and the same tokenizer ids as the safetensors checkpoint;
//   - tern's own writer (BF16/F32 = exact copies) round-trips llama (llama3 rope -> rope_freqs),
//     qwen2 (biases) and qwen3 (q/k norms) to the transformers references;
//   - Q8_0 / Q4_K exports stay close to the original (top-1 agreement).
#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>

#include "core/mapped_file.h"
#include "compress/gguf_quantize.h"
#include "text/gguf_tokenizer.h"
#include "text/tokenizer/tokenizer.h"
#include "model_test_util.h"
#include "test_support.h"

namespace tern::test {
namespace {

double max_abs_diff(const std::vector<float>& a, const std::vector<float>& b) {
  if (a.size() != b.size()) return INFINITY;
  double m = 0;
  for (size_t i = 0; i < a.size(); ++i) m = std::max(m, double(std::fabs(a[i] - b[i])));
  return m;
}

std::vector<int32_t> argmax_rows(const std::vector<float>& logits, int64_t vocab) {
  std::vector<int32_t> out;
  for (size_t r = 0; r * size_t(vocab) < logits.size(); ++r) {
    const float* row = logits.data() + r * size_t(vocab);
    out.push_back(int32_t(std::max_element(row, row + vocab) - row));
  }
  return out;
}

const std::vector<int32_t> kIds = {0, 791, 10206, 29909, 28135, 16, 8191, 5, 300, 301, 302, 1000, 4000, 7, 8, 9};

TEST(GgufModel, PeerConverterFileMatchesSafetensors) {
  if (std::system("python3 -c 'import json' > /dev/null 2>&1") != 0) GTEST_SKIP() << "python3 not available";
  TempDir dir;
  const std::string gguf = dir.file("docs.gguf");
  const std::string cmd = std::string("python3 ") + TERN_SOURCE_DIR + "/bench/peers/llamacpp/hf_to_gguf.py " +
                          model_dir("docs-llama-28m") + " " + gguf + " > /dev/null";
  ASSERT_EQ(std::system(cmd.c_str()), 0) << cmd;
  auto st = Model::load(model_dir("docs-llama-28m"));
  auto gg = Model::load(gguf);
  ASSERT_TRUE(st.is_ok()) << st.status().message();
  ASSERT_TRUE(gg.is_ok()) << gg.status().message();
  EXPECT_EQ((*gg)->config().architecture, "LlamaForCausalLM");
  EXPECT_EQ((*gg)->config().vocab_size, (*st)->config().vocab_size);
  EXPECT_EQ((*gg)->parameter_count(), (*st)->parameter_count());
  ThreadPool pool(2);
  ExecContext ctx(pool, CpuFeatures::detect());
  std::vector<int32_t> ids(kIds);
  for (auto& id : ids) id %= int32_t((*st)->config().vocab_size);
  const auto a = all_logits(**st, ctx, ids), b = all_logits(**gg, ctx, ids);
  EXPECT_LE(max_abs_diff(a, b), 1e-4);  // bf16 weights copied byte for byte: only row order differs

  // Tokenizer from GGUF metadata = tokenizer.json, on real text.
  auto g = GgufFile::open(gguf);
  ASSERT_TRUE(g.is_ok());
  auto tg = gguf_tokenizer(*g);
  ASSERT_TRUE(tg.is_ok()) << tg.status().message();
  auto tj = Tokenizer::load(model_dir("docs-llama-28m"));
  ASSERT_TRUE(tj.is_ok());
  auto text = read_text_file(shared_dir() + "/data/docs-val.txt");
  ASSERT_TRUE(text.is_ok());
  const std::string sample = text->substr(0, 40000) + " <|im_start|>user\nhi<|im_end|> \xF0\x9F\x98\x80 x";
  const auto want = tj->encode(sample);
  EXPECT_EQ(tg->encode(sample), want);
  EXPECT_EQ(tg->decode(want), tj->decode(want));
  EXPECT_EQ(tg->bos_id(), tj->bos_id());
  EXPECT_EQ(tg->eos_id(), tj->eos_id());
  auto tmpl = gguf_chat_template(*g);
  ASSERT_TRUE(tmpl.is_ok()) << tmpl.status().message();
  auto rendered = tmpl->chat_template.render({{"messages", {{{"role", "user"}, {"content", "hi"}}}},
                                              {"add_generation_prompt", true}});
  ASSERT_TRUE(rendered.is_ok());
  EXPECT_NE(rendered->find("<|im_start|>user"), std::string::npos);
}

class GgufExport : public ::testing::TestWithParam<std::string> {};

// tern's writer at full precision: the reloaded model reproduces transformers' logits.
TEST_P(GgufExport, FullPrecisionRoundTripMatchesTransformers) {
  const std::string src = tiny_arch_dir(GetParam());
  auto model = Model::load(src);
  ASSERT_TRUE(model.is_ok()) << model.status().message();
  TempDir dir;
  ASSERT_TRUE(quantize_to_gguf(**model, dir.file("m.gguf"), GgufType::F32).is_ok());
  auto g = Model::load(dir.file("m.gguf"));
  ASSERT_TRUE(g.is_ok()) << g.status().message();
  const auto ref = load_json(src + "/reference.json");
  ThreadPool pool(2);
  ExecContext ctx(pool, CpuFeatures::detect());
  const int64_t vocab = (*g)->config().vocab_size;
  for (const auto& seq : ref["sequences"]) {
    const auto ids = seq["ids"].get<std::vector<int32_t>>();
    const auto logits = all_logits(**g, ctx, ids);
    ASSERT_EQ(logits.size(), ids.size() * size_t(vocab));
    const auto want = seq["last_logits"].get<std::vector<double>>();
    const float* last = logits.data() + (ids.size() - 1) * size_t(vocab);
    double err = 0;
    for (int64_t v = 0; v < vocab; ++v) err = std::max(err, std::fabs(last[v] - want[size_t(v)]));
    EXPECT_LE(err, 1e-4) << GetParam() << " n=" << ids.size();
  }
}

INSTANTIATE_TEST_SUITE_P(Archs, GgufExport, ::testing::Values("llama", "llama_tied", "qwen2", "qwen3"));

TEST(GgufModel, QuantizedExportsStayClose) {
  auto st = Model::load(model_dir("docs-llama-28m"));
  ASSERT_TRUE(st.is_ok());
  ThreadPool pool(2);
  ExecContext ctx(pool, CpuFeatures::detect());
  auto text = read_text_file(shared_dir() + "/data/docs-val.txt");
  auto tok = Tokenizer::load(model_dir("docs-llama-28m"));
  ASSERT_TRUE(text.is_ok() && tok.is_ok());
  auto ids = tok->encode(text->substr(0, 3000));
  ids.resize(std::min<size_t>(ids.size(), 256));
  const int64_t vocab = (*st)->config().vocab_size;
  const auto base = argmax_rows(all_logits(**st, ctx, ids), vocab);
  TempDir dir;
  for (auto [type, min_agree] : {std::pair{GgufType::Q8_0, 0.97}, std::pair{GgufType::Q4_K, 0.85}}) {
    const std::string path = dir.file(std::string(gguf_traits(type).name) + ".gguf");
    ASSERT_TRUE(quantize_to_gguf(**st, path, type).is_ok());
    auto q = Model::load(path);
    ASSERT_TRUE(q.is_ok()) << q.status().message();
    const auto top = argmax_rows(all_logits(**q, ctx, ids), vocab);
    ASSERT_EQ(top.size(), base.size());
    size_t agree = 0;
    for (size_t i = 0; i < top.size(); ++i) agree += top[i] == base[i];
    EXPECT_GE(double(agree) / double(top.size()), min_agree) << gguf_traits(type).name;
  }
}

TEST(GgufModel, TruncatedGgufIsAClearError) {
  TempDir dir;
  auto st = Model::load(tiny_arch_dir("qwen3"));
  ASSERT_TRUE(st.is_ok());
  ASSERT_TRUE(quantize_to_gguf(**st, dir.file("m.gguf"), GgufType::Q8_0).is_ok() ||
              quantize_to_gguf(**st, dir.file("m.gguf"), GgufType::F16).is_ok());
  auto bytes = read_text_file(dir.file("m.gguf"));
  ASSERT_TRUE(bytes.is_ok());
  write_file(dir.file("cut.gguf"), bytes->substr(0, bytes->size() - 100));
  auto m = Model::load(dir.file("cut.gguf"));
  ASSERT_FALSE(m.is_ok());
  EXPECT_NE(m.status().message().find("cut.gguf"), std::string::npos) << m.status().message();
}

}  // namespace
}  // namespace tern::test
