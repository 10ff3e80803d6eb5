// SentencePiece-style BPE (Llama-2 / Mistral shape) on a tiny hand-made tokenizer.json: the ▁ normalizers,
// byte fallback, the Replace/ByteFallback/Fuse/Strip decoder, streaming decode, and clear errors.
#include <gtest/gtest.h>

#include <cstdio>
#include <string>
#include <vector>

#include "text/tokenizer/tokenizer.h"
#include "text/tokenizer/utf8.h"

namespace tern {
namespace {

std::string sp_json(const std::string& normalizer_extra = "", const std::string& replace_pattern =
                                                                   R"({"String": " "})") {
  std::string vocab = R"("<unk>": 0, "<s>": 1, "</s>": 2)";
  for (int b = 0; b < 256; ++b) {
    char name[16];
    std::snprintf(name, sizeof name, "<0x%02X>", b);
    vocab += ", \"" + std::string(name) + "\": " + std::to_string(3 + b);
  }
  vocab += R"(, "▁": 259, "h": 260, "i": 261, "▁h": 262, "▁hi": 263)";
  return R"({"added_tokens": [{"id": 1, "content": "<s>", "special": true, "normalized": false},
                             {"id": 2, "content": "</s>", "special": true, "normalized": false}],
    "normalizer": {"type": "Sequence", "normalizers": [{"type": "Prepend", "prepend": "▁"},
        {"type": "Replace", "pattern": )" + replace_pattern + R"(, "content": "▁"})" + normalizer_extra + R"(]},
    "pre_tokenizer": null,
    "post_processor": {"type": "TemplateProcessing", "single": [{"SpecialToken": {"id": "<s>", "type_id": 0}},
        {"Sequence": {"id": "A", "type_id": 0}}], "special_tokens": {"<s>": {"id": "<s>", "ids": [1], "tokens": ["<s>"]}}},
    "decoder": {"type": "Sequence", "decoders": [
        {"type": "Replace", "pattern": {"String": "▁"}, "content": " "}, {"type": "ByteFallback"}, {"type": "Fuse"},
        {"type": "Strip", "content": " ", "start": 1, "stop": 0}]},
    "model": {"type": "BPE", "byte_fallback": true, "fuse_unk": true, "unk_token": "<unk>",
              "vocab": {)" + vocab + R"(}, "merges": ["▁ h", "▁h i"]}})";
}

TEST(TokenizerSentencePiece, DummyPrefixSpacesAndByteFallback) {
  auto t = Tokenizer::from_json(sp_json());
  ASSERT_TRUE(t.is_ok()) << t.status().message();
  // "hi hi é" -> "▁hi▁hi▁é": é (C3 A9) is not in the vocab, so it becomes two byte tokens.
  std::vector<int32_t> want = {263, 263, 259, 3 + 0xC3, 3 + 0xA9};
  EXPECT_EQ(t.value().encode("hi hi é", false), want);
  want.insert(want.begin(), 1);
  EXPECT_EQ(t.value().encode("hi hi é", true), want);
  EXPECT_EQ(t.value().decode(want, /*skip_special_tokens=*/true), "hi hi é");  // Strip drops the dummy space
  EXPECT_TRUE(t.value().encode("", false).empty());  // Prepend leaves empty text empty
  // The dummy prefix is added again after a special token (Hugging Face normalizes each segment).
  EXPECT_EQ(t.value().encode("hi</s>hi", false), (std::vector<int32_t>{263, 2, 263}));
}

TEST(TokenizerSentencePiece, StreamingNeverSplitsACharacter) {
  auto t = Tokenizer::from_json(sp_json());
  ASSERT_TRUE(t.is_ok()) << t.status().message();
  const std::string text = "hi 日本 é 👍🏽 hi";
  const std::vector<int32_t> ids = t.value().encode(text, false);
  StreamingDecoder d(t.value());
  std::string all;
  for (int32_t id : ids) {
    const std::string piece = d.push(id);
    EXPECT_TRUE(tok::utf8_is_valid(piece)) << "broken UTF-8 emitted after id " << id;
    all += piece;
  }
  all += d.flush();
  EXPECT_EQ(all, text);
  EXPECT_EQ(all, t.value().decode(ids));
}

TEST(TokenizerSentencePiece, UnsupportedPartsAreNamed) {
  auto regex = Tokenizer::from_json(sp_json("", R"({"Regex": " +"})"));
  ASSERT_FALSE(regex.is_ok());
  EXPECT_NE(regex.status().message().find("Replace"), std::string::npos) << regex.status().message();
  // SentencePiece's precompiled character map (T5, XLM-R) is not supported: named, not ignored.
  auto precompiled = Tokenizer::from_json(sp_json(R"(, {"type": "Precompiled", "precompiled_charsmap": ""})"));
  ASSERT_FALSE(precompiled.is_ok());
  EXPECT_NE(precompiled.status().message().find("Precompiled"), std::string::npos) << precompiled.status().message();
}

// NFKD is supported (through ICU): a ligature decomposes before BPE, so "ﬁ" encodes as "f" + "i".
TEST(TokenizerSentencePiece, UnicodeNormalizerRunsBeforeBpe) {
  auto plain = Tokenizer::from_json(sp_json(""));
  auto nfkd = Tokenizer::from_json(sp_json(R"(, {"type": "NFKD"})"));
  ASSERT_TRUE(plain.is_ok()) << plain.status().message();
  ASSERT_TRUE(nfkd.is_ok()) << nfkd.status().message();
  EXPECT_EQ(nfkd->encode("\xef\xac\x81", false), plain->encode("fi", false));
  EXPECT_NE(plain->encode("\xef\xac\x81", false), plain->encode("fi", false));
}

}  // namespace
}  // namespace tern
