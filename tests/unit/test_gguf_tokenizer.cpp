// Tokenizers from GGUF metadata: SentencePiece ("llama": merges rebuilt from scores, byte fallback,
// ▁ spaces) and byte-level BPE ("gpt2" with the pre-tokenizer named by tokenizer.ggml.pre), and errors.
#include <gtest/gtest.h>

#include <cstdio>

#include "text/gguf_tokenizer.h"
#include "formats/gguf/gguf_writer.h"
#include "test_support.h"

namespace tern {
namespace {

using Kv = std::vector<std::pair<std::string, GgufValue>>;

Result<Tokenizer> tokenizer_from(const Kv& kv) {
  static int n = 0;
  test::TempDir dir;
  const std::string path = dir.file("t" + std::to_string(n++) + ".gguf");
  Status s = write_gguf(path, kv, {});
  if (!s.is_ok()) return s;
  TERN_ASSIGN_OR_RETURN(GgufFile g, GgufFile::open(path));
  return gguf_tokenizer(g);
}

Kv spm_kv() {
  std::vector<std::string> tokens = {"<unk>", "<s>", "</s>"};
  std::vector<int64_t> types = {2, 3, 3};
  for (int b = 0; b < 256; ++b) {
    char name[16];
    std::snprintf(name, sizeof name, "<0x%02X>", b);
    tokens.push_back(name), types.push_back(6);
  }
  for (const char* t : {"\xE2\x96\x81", "h", "i", "\xE2\x96\x81h", "\xE2\x96\x81hi"}) tokens.push_back(t), types.push_back(1);
  std::vector<double> scores(tokens.size(), 0.0);
  scores[262] = -1.0;  // ▁h merges first
  scores[263] = -2.0;  // then ▁h + i
  Kv kv;
  kv.emplace_back("tokenizer.ggml.model", GgufValue::make_string("llama"));
  kv.emplace_back("tokenizer.ggml.tokens", GgufValue::make_strings(tokens));
  kv.emplace_back("tokenizer.ggml.scores", GgufValue::make_floats(scores));
  kv.emplace_back("tokenizer.ggml.token_type", GgufValue::make_ints(GgufValueType::I32, types));
  kv.emplace_back("tokenizer.ggml.bos_token_id", GgufValue::make_u32(1));
  kv.emplace_back("tokenizer.ggml.eos_token_id", GgufValue::make_u32(2));
  kv.emplace_back("tokenizer.ggml.unknown_token_id", GgufValue::make_u32(0));
  return kv;
}

TEST(GgufTokenizer, SentencePieceFromScores) {
  auto t = tokenizer_from(spm_kv());
  ASSERT_TRUE(t.is_ok()) << t.status().message();
  // "hi hi" -> ▁hi ▁hi with BOS (SentencePiece models add BOS unless add_bos_token says otherwise).
  EXPECT_EQ(t->encode("hi hi"), (std::vector<int32_t>{1, 263, 263}));
  // "é" is not in the vocab: byte fallback to <0xC3> <0xA9> after the ▁ prefix.
  EXPECT_EQ(t->encode("é", false), (std::vector<int32_t>{259, 3 + 0xC3, 3 + 0xA9}));
  EXPECT_EQ(t->decode({1, 263, 263}, true), "hi hi");
  EXPECT_EQ(t->bos_id(), 1);
  EXPECT_EQ(t->eos_id(), 2);
  Kv no_bos = spm_kv();
  no_bos.emplace_back("tokenizer.ggml.add_bos_token", GgufValue::make_bool(false));
  auto t2 = tokenizer_from(no_bos);
  ASSERT_TRUE(t2.is_ok()) << t2.status().message();
  EXPECT_EQ(t2->encode("hi"), (std::vector<int32_t>{263}));
}

Kv gpt2_kv(const std::string& pre) {
  // Byte-level vocab: "a", "b", "Ġ" (space), "ab", "Ġab" and a control token.
  Kv kv;
  kv.emplace_back("tokenizer.ggml.model", GgufValue::make_string("gpt2"));
  kv.emplace_back("tokenizer.ggml.pre", GgufValue::make_string(pre));
  kv.emplace_back("tokenizer.ggml.tokens",
                  GgufValue::make_strings({"a", "b", "\xC4\xA0", "ab", "\xC4\xA0" "ab", "<|end|>", "1", "2", "12"}));
  kv.emplace_back("tokenizer.ggml.token_type", GgufValue::make_ints(GgufValueType::I32, {1, 1, 1, 1, 1, 3, 1, 1, 1}));
  kv.emplace_back("tokenizer.ggml.merges", GgufValue::make_strings({"a b", "\xC4\xA0 ab", "1 2"}));
  kv.emplace_back("tokenizer.ggml.eos_token_id", GgufValue::make_u32(5));
  return kv;
}

TEST(GgufTokenizer, ByteLevelBpeWithPreTokenizers) {
  for (const char* pre : {"llama-bpe", "qwen2", "default"}) {
    auto t = tokenizer_from(gpt2_kv(pre));
    ASSERT_TRUE(t.is_ok()) << pre << ": " << t.status().message();
    EXPECT_EQ(t->encode("ab ab<|end|>"), (std::vector<int32_t>{3, 4, 5})) << pre;
    EXPECT_EQ(t->decode({3, 4}), "ab ab");
    EXPECT_EQ(t->eos_id(), 5);
  }
  // Llama 3 groups up to 3 digits, Qwen2 splits every digit.
  EXPECT_EQ(tokenizer_from(gpt2_kv("llama-bpe"))->encode("12"), (std::vector<int32_t>{8}));
  EXPECT_EQ(tokenizer_from(gpt2_kv("qwen2"))->encode("12"), (std::vector<int32_t>{6, 7}));
}

TEST(GgufTokenizer, BadMetadataIsAnError) {
  auto unknown_pre = tokenizer_from(gpt2_kv("some-new-model"));
  ASSERT_FALSE(unknown_pre.is_ok());
  EXPECT_NE(unknown_pre.status().message().find("some-new-model"), std::string::npos);
  Kv bad = gpt2_kv("llama-bpe");
  bad[3].second = GgufValue::make_ints(GgufValueType::I32, {1, 1});  // token_type too short
  EXPECT_FALSE(tokenizer_from(bad).is_ok());
  Kv no_model;
  EXPECT_FALSE(tokenizer_from(no_model).is_ok());
  Kv wrong = gpt2_kv("llama-bpe");
  wrong[0].second = GgufValue::make_string("rwkv");
  EXPECT_FALSE(tokenizer_from(wrong).is_ok());
  Kv bos = spm_kv();
  bos[4].second = GgufValue::make_u32(100000);  // bos id out of range
  EXPECT_FALSE(tokenizer_from(bos).is_ok());
}

// Token strings become tokenizer.json text: invalid UTF-8 was a json::type_error thrown out of the loader (a crash),
// and a repeated string silently left its first id without a token.
TEST(GgufTokenizer, TokenStringsMustBeUtf8AndDistinct) {
  Kv bad = spm_kv();
  std::vector<std::string> tokens = bad[1].second.strings;
  tokens[259] = "\xE2\x96";  // a truncated "▁"
  bad[1].second = GgufValue::make_strings(tokens);
  auto utf8 = tokenizer_from(bad);
  ASSERT_FALSE(utf8.is_ok());
  EXPECT_NE(utf8.status().message().find("tokenizer.ggml.tokens[259] is not valid UTF-8"), std::string::npos)
      << utf8.status().message();
  tokens[259] = "h";
  bad[1].second = GgufValue::make_strings(tokens);
  auto twice = tokenizer_from(bad);
  ASSERT_FALSE(twice.is_ok());
  EXPECT_NE(twice.status().message().find("tokenizer.ggml.tokens[260] repeats token 'h' of id 259"),
            std::string::npos)
      << twice.status().message();
}

}  // namespace
}  // namespace tern
