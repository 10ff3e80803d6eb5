// Every decoder type Hugging Face accepts either decodes as Hugging Face does or is refused naming it (issue 14
// item 8: a top-level Fuse was refused). tern decodes token by token (for streaming), so chains that need the whole
// text are errors; tests/parity/test_tokenizer_npm_variants.cpp checks the supported ones against npm `tokenizers`.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "text/tokenizer/tokenizer.h"

namespace tern {
namespace {

using nlohmann::json;

// Character-mode BPE whose tokens exercise the decoders: spaces, "##" continuations, "▁", a byte token, punctuation.
json tokenizer_with(const json& decoder) {
  json vocab = {{"a", 0},      {"b", 1},     {" ", 2},       {"##c", 3},        {"\u2581d", 4}, {"<0x41>", 5},
                {".", 6},      {" .", 7},    {"e\u2581", 8}, {"\xC4\xA0x", 9}, {"  ", 10}};
  return json{{"model", {{"type", "BPE"}, {"vocab", vocab}, {"merges", json::array()}}},
              {"added_tokens", json::array()},
              {"decoder", decoder}};
}

Tokenizer load(const json& decoder) {
  auto t = Tokenizer::from_json(tokenizer_with(decoder).dump());
  EXPECT_TRUE(t.is_ok()) << t.status().message();
  if (!t.is_ok()) throw std::runtime_error(t.status().message());
  return *t;
}

// decode(ids), checked against the streaming decoder.
std::string decode(const Tokenizer& t, const std::vector<int32_t>& ids) {
  StreamingDecoder sd(t);
  std::string streamed;
  for (int32_t id : ids) streamed += sd.push(id);
  streamed += sd.flush();
  const std::string whole = t.decode(ids);
  EXPECT_EQ(streamed, whole);
  return whole;
}

std::string error_of(const json& decoder) {
  auto t = Tokenizer::from_json(tokenizer_with(decoder).dump());
  return t.is_ok() ? "" : t.status().message();
}

json strip(const std::string& content, int start, int stop) {
  return {{"type", "Strip"}, {"content", content}, {"start", start}, {"stop", stop}};
}
// A vector, not a json: `{x}` with one json element would copy x instead of making an array of it.
json seq(const std::vector<json>& steps) { return {{"type", "Sequence"}, {"decoders", steps}}; }
const json kFuse = {{"type", "Fuse"}};

TEST(TokenizerDecoders, FuseAloneJoinsTheTokens) {
  EXPECT_EQ(decode(load(kFuse), {0, 1, 2, 0}), "ab a");
  EXPECT_EQ(decode(load(nullptr), {0, 1, 2, 0}), "a b   a");  // no decoder: joined with spaces, as in HF
  EXPECT_EQ(decode(load(seq({})), {0, 1}), "ab");  // an empty Sequence still joins without spaces
}

TEST(TokenizerDecoders, PerTokenSteps) {
  const json replace = {{"type", "Replace"}, {"pattern", {{"String", "a"}}}, {"content", "<A>"}};
  EXPECT_EQ(decode(load(replace), {0, 1, 0}), "<A>b<A>");
  // Strip works on each token before Fuse: "  " loses one space per token.
  EXPECT_EQ(decode(load(seq({strip(" ", 1, 0), kFuse})), {10, 0, 10}), " a ");
  EXPECT_EQ(decode(load(strip(" ", 0, 1)), {7, 10}), " . ");
  EXPECT_EQ(decode(load(seq({strip("e", 1, 0)})), {8}), "\u2581");
  // WordPiece: "##" continues a word, another token starts one; cleanup glues " ." to the word before.
  const json wp = {{"type", "WordPiece"}, {"prefix", "##"}, {"cleanup", true}};
  EXPECT_EQ(decode(load(wp), {0, 3, 1, 6}), "ac b.");
  EXPECT_EQ(decode(load(wp), {3, 0}), "##c a");  // the first token keeps its prefix
  const json wp_raw = {{"type", "WordPiece"}, {"prefix", "##"}, {"cleanup", false}};
  EXPECT_EQ(decode(load(wp_raw), {0, 6}), "a .");
  // ByteLevel after a Replace, in a nested Sequence: the byte alphabet back to bytes.
  EXPECT_EQ(decode(load(seq({seq({{{"type", "Replace"}, {"pattern", {{"String", "a"}}}, {"content", "\xC4\xA0"}}}),
                             {{"type", "ByteLevel"}}})),
                   {9, 0}),
            " x ");
  // Metaspace as a decoder: "▁" is a space, dropped in the first token.
  const json ms = {{"type", "Metaspace"}, {"replacement", "\u2581"}, {"prepend_scheme", "always"}, {"split", true}};
  EXPECT_EQ(decode(load(ms), {4, 4}), "d d");
}

TEST(TokenizerDecoders, StripAfterFuseSpansTokens) {
  // The whole text loses at most `start` leading characters, across tokens ("", " ", "  " all count).
  EXPECT_EQ(decode(load(seq({kFuse, strip(" ", 2, 0)})), {2, 10, 0}), " a");
  EXPECT_EQ(decode(load(seq({kFuse, strip(" ", 1, 0), strip(" ", 1, 0)})), {2, 2, 2, 0}), " a");
  EXPECT_EQ(decode(load(seq({kFuse, strip(" ", 5, 0)})), {0, 2}), "a ");
  // The SentencePiece chain of Llama-2: Replace, ByteFallback, Fuse, Strip.
  const json sp = seq({{{"type", "Replace"}, {"pattern", {{"String", "\u2581"}}}, {"content", " "}},
                       {{"type", "ByteFallback"}}, kFuse, strip(" ", 1, 0)});
  EXPECT_EQ(decode(load(sp), {4, 5, 4}), "dA d");
}

TEST(TokenizerDecoders, ChainsThatNeedTheWholeTextAreNamed) {
  EXPECT_NE(error_of({{"type", "BPEDecoder"}, {"suffix", "</w>"}}).find("BPEDecoder"), std::string::npos);
  EXPECT_NE(error_of({{"type", "CTC"}, {"pad_token", "<pad>"}}).find("CTC"), std::string::npos);
  EXPECT_NE(error_of({{"type", "Replace"}, {"pattern", {{"Regex", "a+"}}}, {"content", ""}}).find("Regex"),
            std::string::npos);
  EXPECT_NE(error_of(seq({kFuse, strip(" ", 0, 1)})).find("stop > 0 after Fuse"), std::string::npos);
  EXPECT_NE(error_of(seq({kFuse, {{"type", "Replace"}, {"pattern", {{"String", "a"}}}, {"content", "b"}}}))
                .find("'Replace' after Fuse"),
            std::string::npos);
  EXPECT_NE(error_of(seq({{{"type", "ByteLevel"}}, {{"type", "WordPiece"}}})).find("'WordPiece' after Fuse or ByteLevel"),
            std::string::npos);
  EXPECT_NE(error_of(seq({{{"type", "ByteFallback"}}, strip(" ", 1, 0)})).find("Strip after ByteFallback"),
            std::string::npos);
  EXPECT_NE(error_of(strip("ab", 1, 0)).find("one-character"), std::string::npos);
  EXPECT_NE(error_of({{"type", "Frobnicate"}}).find("unsupported decoder type 'Frobnicate'"), std::string::npos);
  // Sequences nested without end are a load error, not a stack overflow.
  json deep = kFuse;
  for (int k = 0; k < 100; ++k) deep = seq({deep});
  EXPECT_NE(error_of(deep).find("decoder Sequences nested deeper than 32"), std::string::npos);
}

// A stage nested 100,000 deep (found by bench/fuzz_model_files): json::value() copied it, and the copy recursed
// until the stack overflowed; an error message dump()ed a deep value the same way.
TEST(TokenizerDecoders, DeeplyNestedJsonIsAnErrorNotACrash) {
  const std::string base = tokenizer_with(nullptr).dump();
  auto with = [&](const std::string& key, const std::string& open, const std::string& close) {
    std::string deep;
    for (int k = 0; k < 100000; ++k) deep += open;
    deep += "null";
    for (int k = 0; k < 100000; ++k) deep += close;
    std::string text = base;
    text.insert(text.size() - 1, ", \"" + key + "\": " + deep);
    auto t = Tokenizer::from_json(text.replace(text.find("\"decoder\":null,"), 15, ""));
    return t.is_ok() ? std::string() : t.status().message();
  };
  EXPECT_NE(with("pre_tokenizer", R"({"type": "Sequence", "pretokenizers": [)", "]}").find("nested deeper than 32"),
            std::string::npos);
  EXPECT_NE(with("normalizer", R"({"type": "Sequence", "normalizers": [)", "]}").find("nested deeper than 32"),
            std::string::npos);
  EXPECT_NE(with("decoder", R"({"type": "Sequence", "decoders": [)", "]}").find("nested deeper than 32"),
            std::string::npos);
  const std::string err = with("decoder", "[", "]");
  EXPECT_NE(err.find("unsupported decoder type '[[[[...]]]]'"), std::string::npos) << err;
}

}  // namespace
}  // namespace tern
