// Token ids a loader accepts must name a vocabulary entry (issue 14 item 19): tokenizer ids run from 0 without
// gaps, an empty vocabulary is refused, and config.json / generation_config.json bos / eos / pad ids are checked
// against vocab_size (which may exceed the tokenizer's count: padding rows).
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "core/mapped_file.h"
#include "formats/generation_config.h"
#include "formats/model_config.h"
#include "text/tokenizer/tokenizer.h"
#include "test_support.h"

namespace tern {
namespace {

using nlohmann::json;

json docs_tokenizer() {
  auto text = read_text_file(test::model_dir("docs-llama-28m") + "/tokenizer.json");
  if (!text.is_ok()) throw std::runtime_error(text.status().message());
  return json::parse(*text);
}

std::string tokenizer_error(const json& j) {
  auto t = Tokenizer::from_json(j.dump());
  return t.is_ok() ? "" : t.status().message();
}

TEST(TokenizerIds, AddedTokenPastTheVocabularyIsRefused) {
  json j = docs_tokenizer();  // 8,192 vocab entries, 5 added tokens reusing ids 0..4
  j["added_tokens"].push_back({{"id", 1000000}, {"content", "<|far|>"}, {"special", true}});
  const std::string err = tokenizer_error(j);
  EXPECT_NE(err.find("added token '<|far|>' has id 1000000, outside the vocabulary of 8193 tokens"), std::string::npos)
      << err;
  EXPECT_NE(err.find("id 8192 is no token"), std::string::npos) << err;
  // Right after the vocabulary it extends it.
  j["added_tokens"].back()["id"] = 8192;
  auto t = Tokenizer::from_json(j.dump());
  ASSERT_TRUE(t.is_ok()) << t.status().message();
  EXPECT_EQ(t->vocab_size(), 8193);
  EXPECT_EQ(t->encode("x<|far|>", false).back(), 8192);
}

TEST(TokenizerIds, GapsAndEmptyVocabularies) {
  json j = docs_tokenizer();
  j["model"]["vocab"]["!"] = 9000;  // was 5
  std::string err = tokenizer_error(j);
  EXPECT_NE(err.find("vocab token '!' has id 9000, outside the vocabulary of 8192 tokens"), std::string::npos) << err;
  EXPECT_NE(err.find("id 5 is no token"), std::string::npos) << err;
  json empty = {{"model", {{"type", "BPE"}, {"vocab", json::object()}, {"merges", json::array()}}}};
  EXPECT_NE(tokenizer_error(empty).find("the model vocabulary is empty"), std::string::npos);
  empty["added_tokens"] = json::array({{{"id", 0}, {"content", "<s>"}}});
  EXPECT_NE(tokenizer_error(empty).find("the model vocabulary is empty"), std::string::npos);
}

json docs_config() {
  auto text = read_text_file(test::model_dir("docs-llama-28m") + "/config.json");
  if (!text.is_ok()) throw std::runtime_error(text.status().message());
  return json::parse(*text);
}

std::string config_error(const json& j) {
  auto c = parse_model_config(j.dump(), "config.json");
  return c.is_ok() ? "" : c.status().message();
}

TEST(ConfigIds, BosEosPadMustBeRowsOfTheEmbedding) {
  json j = docs_config();  // vocab_size 8192
  j["bos_token_id"] = 8192;
  EXPECT_EQ(config_error(j), "config.json: bos_token_id: token id 8192 is outside the vocabulary (vocab_size 8192)");
  j = docs_config();
  j["eos_token_id"] = json::array({1, 9000});
  EXPECT_EQ(config_error(j), "config.json: eos_token_id: token id 9000 is outside the vocabulary (vocab_size 8192)");
  j = docs_config();
  j["pad_token_id"] = 8192;
  EXPECT_EQ(config_error(j), "config.json: pad_token_id: token id 8192 is outside the vocabulary (vocab_size 8192)");
  j["pad_token_id"] = "0";
  EXPECT_NE(config_error(j).find("pad_token_id: expected an integer or null"), std::string::npos);
  // Padding rows: ids past the tokenizer's count but inside vocab_size are fine; -1 is "no pad token".
  j = docs_config();
  j["vocab_size"] = 8256;
  j["eos_token_id"] = 8200;
  j["pad_token_id"] = -1;
  EXPECT_EQ(config_error(j), "");
}

TEST(ConfigIds, GenerationConfig) {
  auto g = parse_generation_config(R"({"bos_token_id": 0, "eos_token_id": [1, 3]})", "generation_config.json", 8192);
  ASSERT_TRUE(g.is_ok()) << g.status().message();
  EXPECT_EQ(g->eos_token_ids, (std::vector<int32_t>{1, 3}));
  auto bad = parse_generation_config(R"({"eos_token_id": [1, 8192]})", "generation_config.json", 8192);
  ASSERT_FALSE(bad.is_ok());
  EXPECT_EQ(bad.status().message(),
            "generation_config.json: eos_token_id: token id 8192 is outside the vocabulary (vocab_size 8192)");
  EXPECT_FALSE(parse_generation_config(R"({"bos_token_id": 8192})", "g", 8192).is_ok());
  EXPECT_FALSE(parse_generation_config(R"({"eos_token_id": "x"})", "g", 8192).is_ok());
  auto none = load_generation_config("/nonexistent-dir", 8192);
  ASSERT_TRUE(none.is_ok());
  EXPECT_FALSE(none->has_value());
  auto docs = load_generation_config(test::model_dir("docs-llama-28m"), 8192);
  ASSERT_TRUE(docs.is_ok()) << docs.status().message();
  ASSERT_TRUE(docs->has_value());
  EXPECT_EQ((*docs)->eos_token_ids, std::vector<int32_t>{1});
}

}  // namespace
}  // namespace tern
