// The tokenizer at start-up (issue 20 item 5): built on a thread of its own beside the weights' load
// (text/model_tokenizer.h), tokenizer.json's vocabulary and merges streamed out of the JSON reader, and a
// GGUF file's read straight from its metadata arrays. Each must give the tokenizer the plain path gives.
#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>
#include <thread>

#include "formats/gguf/gguf_writer.h"
#include "core/mapped_file.h"
#include "test_support.h"
#include "text/gguf_tokenizer.h"
#include "text/model_tokenizer.h"

namespace tern {
namespace {

const std::vector<std::string> kTexts = {
    "The kernel scheduler decides which thread runs next.",
    "  leading spaces, tabs\tand\nnew lines\n\n",
    "numbers 1234567 and 3.14159, symbols #!$%&*",
    "Unicode: café, naïve, 日本語, emoji 🙂, Ω≈ç√",
    "<|begin_of_text|>special tokens inside<|eot_id|> text",
    "",
};

// Same vocabulary, same special tokens, same ids for every text.
void expect_same(const Tokenizer& a, const Tokenizer& b) {
  ASSERT_EQ(a.vocab_size(), b.vocab_size());
  for (int32_t id = 0; id < a.vocab_size(); ++id) {
    ASSERT_EQ(a.id_to_token(id), b.id_to_token(id)) << id;
    ASSERT_EQ(a.is_special(id), b.is_special(id)) << id;
  }
  EXPECT_EQ(a.bos_id(), b.bos_id());
  EXPECT_EQ(a.eos_id(), b.eos_id());
  for (const auto& t : kTexts) {
    const auto ids = a.encode(t);
    EXPECT_EQ(ids, b.encode(t)) << t;
    EXPECT_EQ(a.encode(t, false), b.encode(t, false)) << t;
    EXPECT_EQ(a.decode(ids), b.decode(ids)) << t;
  }
}

TEST(ModelTokenizer, LoadedOnItsOwnThreadGivesTheSameTokens) {
  const std::string dir = test::model_dir("docs-llama-28m");
  auto plain = Tokenizer::load(dir);
  ASSERT_TRUE(plain.is_ok()) << plain.status().message();
  // Two at once (as tern run's tokenizer thread runs beside the load's pool), and the serial front door.
  auto a = load_model_tokenizer_async(dir);
  auto b = load_model_tokenizer_async(dir);
  auto serial = load_model_tokenizer(dir);
  for (auto* r : {&serial}) {
    ASSERT_TRUE(r->is_ok()) << r->status().message();
    ASSERT_TRUE(r->value().has_value());
    expect_same(*plain, *r->value());
  }
  for (auto* f : {&a, &b}) {
    auto r = f->get();
    ASSERT_TRUE(r.is_ok()) << r.status().message();
    ASSERT_TRUE(r->has_value());
    expect_same(*plain, **r);
  }
  // A directory without tokenizer.json has none; an unreadable one is an error, on the thread too.
  test::TempDir empty;
  auto none = load_model_tokenizer_async(empty.path()).get();
  ASSERT_TRUE(none.is_ok()) << none.status().message();
  EXPECT_FALSE(none->has_value());
  std::ofstream(empty.file("tokenizer.json")) << "{ not json";
  EXPECT_FALSE(load_model_tokenizer_async(empty.path()).get().is_ok());
}

// tokenizer.json written in another order (model first, merges before vocab, merges as [a, b] pairs):
// the streamed vocabulary and merges do not depend on where they sit in the file.
TEST(ModelTokenizer, TokenizerJsonInAnyOrderGivesTheSameTokens) {
  const std::string dir = test::model_dir("docs-llama-28m");
  auto text = read_text_file(dir + "/tokenizer.json");
  ASSERT_TRUE(text.is_ok());
  auto plain = Tokenizer::from_json(*text);
  ASSERT_TRUE(plain.is_ok()) << plain.status().message();
  nlohmann::ordered_json j = nlohmann::ordered_json::parse(*text);
  nlohmann::ordered_json model = j["model"], reordered = nlohmann::ordered_json::object();
  nlohmann::ordered_json pairs = nlohmann::ordered_json::array();
  for (const auto& m : model["merges"]) {
    const std::string s = m.is_string() ? m.get<std::string>() : m[0].get<std::string>() + " " + m[1].get<std::string>();
    pairs.push_back({s.substr(0, s.find(' ')), s.substr(s.find(' ') + 1)});
  }
  nlohmann::ordered_json new_model = nlohmann::ordered_json::object();
  new_model["merges"] = pairs;
  for (auto it = model.begin(); it != model.end(); ++it)
    if (it.key() != "merges") new_model[it.key()] = it.value();
  reordered["model"] = new_model;
  for (auto it = j.begin(); it != j.end(); ++it)
    if (it.key() != "model") reordered[it.key()] = it.value();
  auto moved = Tokenizer::from_json(reordered.dump());
  ASSERT_TRUE(moved.is_ok()) << moved.status().message();
  expect_same(*plain, *moved);
}

std::string bpe_json(const std::string& vocab, const std::string& merges, const std::string& extra_model = "") {
  return R"({"model": {"type": "BPE", )" + extra_model + R"("vocab": )" + vocab + R"(, "merges": )" + merges +
         R"(}, "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": false}, "decoder": {"type": "ByteLevel"}})";
}

TEST(ModelTokenizer, StreamedVocabAndMergesAreCheckedAsBefore) {
  const std::string vocab = R"({"a": 0, "b": 1, "ab": 2})";
  auto ok = Tokenizer::from_json(bpe_json(vocab, R"(["a b"])"));
  ASSERT_TRUE(ok.is_ok()) << ok.status().message();
  EXPECT_EQ(ok->encode("ab"), (std::vector<int32_t>{2}));
  auto pairs = Tokenizer::from_json(bpe_json(vocab, R"([["a", "b"]])"));
  ASSERT_TRUE(pairs.is_ok()) << pairs.status().message();
  EXPECT_EQ(pairs->encode("ab"), (std::vector<int32_t>{2}));
  auto no_merges = Tokenizer::from_json(bpe_json(vocab, "[]"));
  ASSERT_TRUE(no_merges.is_ok());
  EXPECT_EQ(no_merges->encode("ab"), (std::vector<int32_t>{0, 1}));
  auto error_of = [](const std::string& json) {
    auto t = Tokenizer::from_json(json);
    return t.is_ok() ? std::string("(loaded)") : t.status().message();
  };
  auto has = [](const std::string& s, const char* what) { return s.find(what) != std::string::npos; };
  for (const char* bad_id : {R"({"a": -1})", R"({"a": 1.5})", R"({"a": "0"})", R"({"a": 4294967296})",
                             R"({"a": [0]})", R"({"a": {"id": 0}})", R"({"a": null})"}) {
    const std::string e = error_of(bpe_json(bad_id, "[]"));
    EXPECT_TRUE(has(e, "invalid id")) << bad_id << ": " << e;
  }
  for (const char* bad_merges : {R"(["a  b"])", R"(["ab"])", R"(["a b c"])", R"([["a"]])", R"([["a", "b", "c"]])",
                                 R"([1])", R"([["a", 1]])", R"([{"a": "b"}])", R"([null])"}) {
    const std::string e = error_of(bpe_json(vocab, bad_merges));
    EXPECT_TRUE(has(e, "merge")) << bad_merges << ": " << e;
  }
  EXPECT_TRUE(has(error_of(bpe_json(vocab, R"(["a x"])")), "missing from the vocab"));
  EXPECT_TRUE(has(error_of(bpe_json(R"({"a": 0, "b": 1, "a": 2})", "[]")), "appears twice"));
  EXPECT_TRUE(has(error_of(bpe_json(vocab, R"("a b")")), "'merges' array"));
  EXPECT_TRUE(has(error_of(bpe_json(R"(["a", "b"])", "[]")), "'vocab' object"));
  EXPECT_TRUE(has(error_of(bpe_json(vocab, "[]", R"("dropout": 0.5, )")), "dropout"));
  EXPECT_TRUE(has(error_of(bpe_json(vocab, R"(["a b"])").substr(1)), "not valid JSON"));
  // A second "model" replaces the first, vocabulary and merges included (the last key wins, as in a DOM).
  const std::string twice = R"({"model": {"type": "BPE", "vocab": {"x": 0}, "merges": ["x x"]}, )" +
                            bpe_json(vocab, R"(["a b"])").substr(1);
  auto last = Tokenizer::from_json(twice);
  ASSERT_TRUE(last.is_ok()) << last.status().message();
  EXPECT_EQ(last->vocab_size(), 3);
  EXPECT_EQ(last->encode("ab"), (std::vector<int32_t>{2}));
  // A "vocab" or "merges" key elsewhere than in the root's model is an ordinary JSON value.
  const std::string elsewhere = R"({"extra": {"vocab": {"q": 1}, "merges": [1, 2]}, )" + bpe_json(vocab, "[]").substr(1);
  EXPECT_TRUE(has(error_of(elsewhere), "extra") || has(error_of(elsewhere), "(loaded)")) << error_of(elsewhere);
}

using Kv = std::vector<std::pair<std::string, GgufValue>>;

// The GGUF vocabulary and merges read straight from the metadata give the tokenizer that their
// tokenizer.json text (gguf_tokenizer_json) gives.
TEST(ModelTokenizer, GgufMetadataReadDirectlyMatchesItsTokenizerJson) {
  const std::string dir = test::model_dir("docs-llama-28m");
  auto src = Tokenizer::load(dir);
  ASSERT_TRUE(src.is_ok());
  auto text = read_text_file(dir + "/tokenizer.json");
  ASSERT_TRUE(text.is_ok());
  const nlohmann::json j = nlohmann::json::parse(*text);
  // A gpt2 (byte-level) GGUF tokenizer from the same vocabulary and merges, llama-bpe pre-tokenizer.
  std::vector<std::string> tokens(size_t(src->vocab_size()));
  std::vector<int64_t> types(tokens.size(), 1);
  for (int32_t id = 0; id < src->vocab_size(); ++id) {
    tokens[size_t(id)] = src->id_to_token(id);
    if (src->is_special(id)) types[size_t(id)] = 3;
  }
  std::vector<std::string> merges;
  for (const auto& m : j["model"]["merges"])
    merges.push_back(m.is_string() ? m.get<std::string>() : m[0].get<std::string>() + " " + m[1].get<std::string>());
  Kv kv;
  kv.emplace_back("tokenizer.ggml.model", GgufValue::make_string("gpt2"));
  kv.emplace_back("tokenizer.ggml.pre", GgufValue::make_string("llama-bpe"));
  kv.emplace_back("tokenizer.ggml.tokens", GgufValue::make_strings(tokens));
  kv.emplace_back("tokenizer.ggml.token_type", GgufValue::make_ints(GgufValueType::I32, types));
  kv.emplace_back("tokenizer.ggml.merges", GgufValue::make_strings(merges));
  if (src->bos_id()) kv.emplace_back("tokenizer.ggml.bos_token_id", GgufValue::make_u32(uint32_t(*src->bos_id())));
  if (src->eos_id()) kv.emplace_back("tokenizer.ggml.eos_token_id", GgufValue::make_u32(uint32_t(*src->eos_id())));
  kv.emplace_back("tokenizer.ggml.add_bos_token", GgufValue::make_bool(true));
  test::TempDir tmp;
  const std::string path = tmp.file("tok.gguf");
  ASSERT_TRUE(write_gguf(path, kv, {}).is_ok());
  auto g = GgufFile::open(path);
  ASSERT_TRUE(g.is_ok()) << g.status().message();
  auto tj = gguf_tokenizer_json(*g);
  ASSERT_TRUE(tj.is_ok()) << tj.status().message();
  auto via_json = Tokenizer::from_json(tj->tokenizer_json, tj->config_json);
  ASSERT_TRUE(via_json.is_ok()) << via_json.status().message();
  auto direct = gguf_tokenizer(*g);
  ASSERT_TRUE(direct.is_ok()) << direct.status().message();
  expect_same(*via_json, *direct);
  // The same through the front door, on its own thread, with the file parsed once and shared.
  auto shared = std::make_shared<const GgufFile>(std::move(g).value());
  auto r = load_model_tokenizer_async(path, shared).get();
  ASSERT_TRUE(r.is_ok()) << r.status().message();
  ASSERT_TRUE(r->has_value());
  expect_same(*direct, **r);
  // A bad merge is the same error either way.
  merges[7] = "no_space_here";
  kv[4].second = GgufValue::make_strings(merges);
  ASSERT_TRUE(write_gguf(path, kv, {}).is_ok());
  auto bad = GgufFile::open(path);
  ASSERT_TRUE(bad.is_ok());
  auto e1 = gguf_tokenizer(*bad);
  auto tj2 = gguf_tokenizer_json(*bad);
  ASSERT_TRUE(tj2.is_ok());
  auto e2 = Tokenizer::from_json(tj2->tokenizer_json);
  ASSERT_FALSE(e1.is_ok());
  ASSERT_FALSE(e2.is_ok());
  EXPECT_NE(e1.status().message().find(e2.status().message()), std::string::npos)
      << e1.status().message() << " | " << e2.status().message();
}

}  // namespace
}  // namespace tern
