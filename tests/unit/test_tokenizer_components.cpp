// The tokenizer's stages on their own: UTF-8 policy, byte-level alphabet, BPE merge strategies, split behaviours,
// added-token matching, config overrides and every malformed-input path of the loader.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <random>

#include "core/mapped_file.h"
#include "text/tokenizer/added_tokens.h"
#include "text/tokenizer/bpe_model.h"
#include "text/tokenizer/pre_tokenizer.h"
#include "text/tokenizer/regex.h"
#include "text/tokenizer/tokenizer.h"
#include "text/tokenizer/tokenizer_spec.h"
#include "text/tokenizer/utf8.h"
#include "test_support.h"

namespace tern {
namespace {

using nlohmann::json;
const std::string kFFFD = "\xEF\xBF\xBD";

TEST(TokenizerUtf8, LossyReplacesMaximalSubparts) {
  EXPECT_EQ(tok::utf8_lossy("abc"), "abc");
  EXPECT_EQ(tok::utf8_lossy("\xC0\x80"), kFFFD + kFFFD);             // overlong lead: each byte alone
  EXPECT_EQ(tok::utf8_lossy("\xED\xA0\x80"), kFFFD + kFFFD + kFFFD);  // surrogate
  EXPECT_EQ(tok::utf8_lossy("\xF0\x9F\x98" "A"), kFFFD + "A");        // truncated 4-byte char: one replacement
  EXPECT_EQ(tok::utf8_lossy("x\xE4\xB8"), "x" + kFFFD);               // truncated at the end
  EXPECT_EQ(tok::utf8_lossy("\xF4\x90\x80\x80"), kFFFD + kFFFD + kFFFD + kFFFD);  // > U+10FFFF
  EXPECT_EQ(tok::utf8_lossy("\xE4\xB8\xAD"), "\xE4\xB8\xAD");
  EXPECT_TRUE(tok::utf8_is_valid("\xF0\x9F\x98\x80 ok"));
  EXPECT_FALSE(tok::utf8_is_valid("ok \xF0\x9F\x98"));
  EXPECT_EQ(tok::utf8_valid_prefix("abcdefghij\xFFxyz"), 10u);
}

TEST(TokenizerUtf8, ByteLevelAlphabetRoundTrips) {
  EXPECT_EQ(tok::byte_level_encode(" "), "\xC4\xA0");  // 'Ġ'
  EXPECT_EQ(tok::byte_level_encode("\n"), "\xC4\x8A");  // 'Ċ'
  EXPECT_EQ(tok::byte_level_encode("A!~"), "A!~");
  std::string all;
  for (int b = 0; b < 256; ++b) all += static_cast<char>(b);
  std::string back;
  ASSERT_TRUE(tok::byte_level_decode(tok::byte_level_encode(all), back));
  EXPECT_EQ(back, all);
  std::string out;
  EXPECT_FALSE(tok::byte_level_decode(" ", out));  // a raw space is not in the alphabet
}

tok::TokenizerSpec llama_spec() {
  auto text = read_text_file(test::model_dir("docs-llama-28m") + "/tokenizer.json");
  if (!text.is_ok()) throw std::runtime_error(text.status().message());
  auto spec = tok::parse_tokenizer_json(*text);
  if (!spec.is_ok()) throw std::runtime_error(spec.status().message());
  return std::move(spec).value();
}

TEST(TokenizerBpe, ScanAndHeapMergeAgree) {
  auto model = tok::BpeModel::build(llama_spec().model, /*byte_level=*/true);
  ASSERT_TRUE(model.is_ok()) << model.status().message();
  auto text = read_text_file(test::shared_dir() + "/data/docs-val.txt");
  ASSERT_TRUE(text.is_ok());
  std::mt19937 rng(3);
  int changed = 0;
  for (int iter = 0; iter < 300; ++iter) {
    const size_t len = 1 + rng() % 200, at = rng() % (text->size() - len);
    std::vector<int32_t> syms;
    for (size_t i = at; i < at + len; ++i) {
      const std::string one = tok::byte_level_encode(text->substr(i, 1));
      const int32_t id = model->vocab_id(one);
      ASSERT_GE(id, 0) << "byte " << int(uint8_t((*text)[i])) << " has no token";
      syms.push_back(id);
    }
    std::vector<int32_t> a = syms, b = syms;
    model->merge_small(a);
    model->merge_heap(b);
    ASSERT_EQ(a, b) << "at " << at << " len " << len;
    changed += a.size() < syms.size();
  }
  EXPECT_GT(changed, 200);
}

// A character-mode BPE (no ByteLevel) with a '-' literal splitter, for behaviours that Llama-3 does not use.
json tiny_json(bool ignore_merges) {
  json vocab = {{"a", 0}, {"b", 1}, {"c", 2}, {"ab", 3}, {"bc", 4}, {"abc", 5}, {"<unk>", 6}, {"-", 7}, {"<s>", 8}};
  return json{{"model",
               {{"type", "BPE"},
                {"vocab", vocab},
                {"merges", json::array({"a b", json::array({"b", "c"})})},
                {"ignore_merges", ignore_merges},
                {"unk_token", "<unk>"}}},
              {"pre_tokenizer",
               {{"type", "Split"}, {"pattern", {{"String", "-"}}}, {"behavior", "Isolated"}, {"invert", false}}},
              {"added_tokens",
               json::array({{{"id", 8}, {"content", "<s>"}, {"special", true}, {"normalized", false}}})},
              {"post_processor",
               {{"type", "TemplateProcessing"},
                {"single", json::array({{{"SpecialToken", {{"id", "<s>"}, {"type_id", 0}}}},
                                        {{"Sequence", {{"id", "A"}, {"type_id", 0}}}}})},
                {"special_tokens", {{"<s>", {{"id", "<s>"}, {"ids", {8}}, {"tokens", {"<s>"}}}}}}}},
              {"decoder", nullptr}};
}

TEST(TokenizerBpe, IgnoreMergesUnkAndNoDecoder) {
  auto plain = Tokenizer::from_json(tiny_json(false).dump());
  ASSERT_TRUE(plain.is_ok()) << plain.status().message();
  EXPECT_EQ(plain->encode("abc", false), (std::vector<int32_t>{3, 2}));  // a+b first (rank 0), then no "ab c"
  auto whole = Tokenizer::from_json(tiny_json(true).dump());
  ASSERT_TRUE(whole.is_ok());
  EXPECT_EQ(whole->encode("abc", false), (std::vector<int32_t>{5}));  // in the vocab: emitted whole
  EXPECT_EQ(whole->encode("abc-bcx"), (std::vector<int32_t>{8, 5, 7, 4, 6}));  // x is unknown
  EXPECT_EQ(whole->bos_id(), std::optional<int32_t>(8));
  EXPECT_EQ(whole->decode({5, 7, 4}), "abc - bc");  // no decoder: tokens joined by spaces, as in HF
}

std::vector<std::string> split_pieces(tok::SplitBehavior behavior, bool invert, const std::string& text) {
  tok::SplitSpec s;
  s.pattern = "-";
  s.is_regex = false;
  s.behavior = behavior;
  s.invert = invert;
  auto pre = tok::PreTokenizer::build({s});
  if (!pre.is_ok()) throw std::runtime_error(pre.status().message());
  std::string buf = text;
  std::vector<tok::Piece> pieces;
  pre->split(buf, pieces);
  std::vector<std::string> out;
  for (const auto& p : pieces) out.push_back(buf.substr(p.begin, p.end - p.begin));
  return out;
}

TEST(TokenizerPreTokenizer, SplitBehaviours) {
  using B = tok::SplitBehavior;
  using V = std::vector<std::string>;
  const std::string t = "the-final--countdown";
  EXPECT_EQ(split_pieces(B::kRemoved, false, t), (V{"the", "final", "countdown"}));
  EXPECT_EQ(split_pieces(B::kIsolated, false, t), (V{"the", "-", "final", "-", "-", "countdown"}));
  EXPECT_EQ(split_pieces(B::kMergedWithPrevious, false, t), (V{"the-", "final-", "-", "countdown"}));
  EXPECT_EQ(split_pieces(B::kMergedWithNext, false, t), (V{"the", "-final", "-", "-countdown"}));
  EXPECT_EQ(split_pieces(B::kContiguous, false, t), (V{"the", "-", "final", "--", "countdown"}));
  EXPECT_EQ(split_pieces(B::kRemoved, true, t), (V{"-", "-", "-"}));
}

TEST(TokenizerPreTokenizer, InvalidBytesAreOpaquePieces) {
  tok::ByteLevelPreSpec b;
  b.add_prefix_space = true;
  b.use_regex = true;
  auto pre = tok::PreTokenizer::build({b});
  ASSERT_TRUE(pre.is_ok());
  std::string buf = "hi\xFF there";
  std::vector<tok::Piece> pieces;
  pre->split(buf, pieces);
  std::vector<std::string> got;
  for (const auto& p : pieces) got.push_back(buf.substr(p.begin, p.end - p.begin));
  EXPECT_EQ(got, (std::vector<std::string>{" hi", "\xFF", " there"}));  // GPT-2 split, prefix space per piece
}

TEST(TokenizerPreTokenizer, WhitespaceClassIsUnicodeWhiteSpace) {
  auto ws = tok::CompiledRegex::compile(R"(^\s+$)", false);
  auto not_ws = tok::CompiledRegex::compile(R"(^[\S]+$)", false);
  auto escaped = tok::CompiledRegex::compile(R"(^\\s\Q\s\E$)", false);  // a literal backslash-s, then quoted
  ASSERT_TRUE(ws.is_ok() && not_ws.is_ok() && escaped.is_ok());
  tok::MatchData md;
  auto matches = [&](const tok::CompiledRegex& re, const std::string& s) {
    return pcre2_match(re.code(), reinterpret_cast<PCRE2_SPTR>(s.data()), s.size(), 0, 0, md.md, nullptr) >= 0;
  };
  EXPECT_TRUE(matches(**ws, " \t\n\u00a0\u3000\u2028\x0b\x0c"));
  EXPECT_FALSE(matches(**ws, "\u180e"));  // Mongolian vowel separator: not White_Space since Unicode 6.3
  EXPECT_TRUE(matches(**not_ws, "a\u180e\u200b"));
  EXPECT_TRUE(matches(**escaped, "\\s\\s"));
  EXPECT_FALSE(matches(**escaped, "\\s "));
}

std::vector<std::pair<std::string, int32_t>> added_split(const std::vector<tok::AddedTokenSpec>& specs,
                                                         const std::string& text) {
  auto added = tok::AddedTokens::build(specs);
  if (!added.is_ok()) throw std::runtime_error(added.status().message());
  std::vector<tok::AddedTokens::Segment> segs;
  added->split(text, segs);
  std::vector<std::pair<std::string, int32_t>> out;
  for (const auto& s : segs) out.emplace_back(text.substr(s.begin, s.end - s.begin), s.id);
  return out;
}

TEST(TokenizerAddedTokens, StripSingleWordAndLongestMatch) {
  using V = std::vector<std::pair<std::string, int32_t>>;
  tok::AddedTokenSpec mask{10, "<mask>"};
  mask.lstrip = true;
  EXPECT_EQ(added_split({mask}, "a  <mask> b"), (V{{"a", -1}, {"  <mask>", 10}, {" b", -1}}));
  mask.lstrip = false;
  mask.rstrip = true;
  EXPECT_EQ(added_split({mask}, "a <mask> \u3000b"), (V{{"a ", -1}, {"<mask> \u3000", 10}, {"b", -1}}));
  tok::AddedTokenSpec word{11, "ab"};
  word.single_word = true;
  EXPECT_EQ(added_split({word}, "xab ab abc"), (V{{"xab ", -1}, {"ab", 11}, {" abc", -1}}));
  tok::AddedTokenSpec s1{12, "<a>"}, s2{13, "<a><b>"};
  EXPECT_EQ(added_split({s1, s2}, "x<a><b><a>"), (V{{"x", -1}, {"<a><b>", 13}, {"<a>", 12}}));
}

TEST(TokenizerConfig, AddBosAndEosOverrideTheTemplate) {
  auto text = read_text_file(test::model_dir("docs-llama-28m") + "/tokenizer.json");
  ASSERT_TRUE(text.is_ok());
  auto t = Tokenizer::from_json(*text, R"({"bos_token": {"content": "<|begin_of_text|>"},
      "eos_token": "<|im_end|>", "add_bos_token": false, "add_eos_token": true})");
  ASSERT_TRUE(t.is_ok()) << t.status().message();
  const auto ids = t->encode("hello");
  ASSERT_FALSE(ids.empty());
  EXPECT_NE(ids.front(), 0);
  EXPECT_EQ(ids.back(), 3);
  EXPECT_EQ(t->eos_id(), std::optional<int32_t>(3));
  EXPECT_FALSE(Tokenizer::from_json(*text, R"({"bos_token": "<|nope|>"})").is_ok());
  EXPECT_FALSE(Tokenizer::from_json(*text, "{not json").is_ok());
}

void expect_error(const std::string& json_text, const std::string& needle) {
  auto t = Tokenizer::from_json(json_text);
  ASSERT_FALSE(t.is_ok()) << "accepted: " << json_text.substr(0, 200);
  EXPECT_NE(t.status().message().find(needle), std::string::npos) << t.status().message();
}

TEST(TokenizerLoad, MalformedInputsGiveStatusErrors) {
  expect_error("{\"model\": ", "not valid JSON");
  expect_error("[1, 2]", "JSON object");
  expect_error("{}", "no 'model'");
  json j = tiny_json(false);
  j["model"]["type"] = "Unigram";
  expect_error(j.dump(), "Unigram");
  j = tiny_json(false);
  j["model"]["merges"].push_back("a zz");
  expect_error(j.dump(), "missing from the vocab");
  j = tiny_json(false);
  j["model"]["merges"].push_back("abc");
  expect_error(j.dump(), "one space");
  j = tiny_json(false);
  j["model"]["vocab"] = json::array();
  expect_error(j.dump(), "vocab");
  j = tiny_json(false);
  j["model"]["vocab"]["a"] = "zero";
  expect_error(j.dump(), "invalid id");
  j = tiny_json(false);
  j["normalizer"] = {{"type", "BertNormalizer"}};
  expect_error(j.dump(), "BertNormalizer");
  j = tiny_json(false);
  j["pre_tokenizer"] = {{"type", "Metaspace"}, {"replacement", "__"}};
  expect_error(j.dump(), "Metaspace");
  j = tiny_json(false);
  j["pre_tokenizer"]["pattern"] = {{"Regex", "(unclosed"}};
  expect_error(j.dump(), "compile");
  j = tiny_json(false);
  j["decoder"] = {{"type", "CTC"}};
  expect_error(j.dump(), "CTC");
  j = tiny_json(false);
  j["post_processor"] = {{"type", "BertProcessing"}};
  expect_error(j.dump(), "BertProcessing");
  j = tiny_json(false);
  j["model"]["dropout"] = 0.1;
  expect_error(j.dump(), "dropout");
  j = tiny_json(false);
  j["model"]["unk_token"] = "<missing>";
  expect_error(j.dump(), "unk_token");
  j = tiny_json(false);
  j["added_tokens"][0]["content"] = 5;
  expect_error(j.dump(), "content");
  j = tiny_json(false);
  j["model"]["ignore_merges"] = "yes";
  expect_error(j.dump(), "boolean");
  j = tiny_json(false);
  j["truncation"] = {{"max_length", 8}};
  expect_error(j.dump(), "truncation");

  auto missing = Tokenizer::load("/nonexistent/dir/tokenizer.json");
  EXPECT_FALSE(missing.is_ok());
  test::TempDir dir;
  test::write_file(dir.file("tokenizer.json"), tiny_json(true).dump());
  test::write_file(dir.file("tokenizer_config.json"), "{broken");
  auto bad_config = Tokenizer::load(dir.path());
  ASSERT_FALSE(bad_config.is_ok());
  EXPECT_NE(bad_config.status().message().find("tokenizer_config"), std::string::npos);
  test::write_file(dir.file("tokenizer_config.json"), R"({"eos_token": "<s>"})");
  auto ok = Tokenizer::load(dir.path());
  ASSERT_TRUE(ok.is_ok()) << ok.status().message();
  EXPECT_EQ(ok->eos_id(), std::optional<int32_t>(8));
}

}  // namespace
}  // namespace tern
