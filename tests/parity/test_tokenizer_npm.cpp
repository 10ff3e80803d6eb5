// Tokenizer parity with Hugging Face's own library: the npm package `tokenizers` (the node binding of the Rust
// `tokenizers` crate) encodes and decodes a corpus, tern does the same, ids and decoded text must be equal.
//
// npm_tokenizers.h installs the pinned npm packages; the tests skip only when npm/node are not on PATH.
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

// The corpus: every script and shape of text the issue names. Strings are valid UTF-8 (JSON cannot carry
// anything else to node); invalid UTF-8 is covered by the unit tests.
std::vector<std::string> build_corpus() {
  std::vector<std::string> c = {
      "",
      "Hello world",
      "The quick brown fox jumps over the lazy dog. It's 5 o'clock; we'll see what they've done!",
      "  leading spaces and trailing   ",
      "我们今天去公园散步，天气很好。",                  // Chinese simplified
      "我們今天去公園散步，天氣很好。繁體中文測試。",    // Chinese traditional
      "東京は日本の首都です。ひらがなとカタカナ、漢字。",  // Japanese
      "안녕하세요. 한국어 문장을 토큰화합니다.",         // Korean
      "مرحبا بالعالم، هذه جملة عربية.",                  // Arabic
      "👨‍👩‍👧‍👦 family, 👍🏽 thumbs, 🏳️‍🌈 flag, 👩🏿‍💻 coder",  // ZWJ sequences and skin tones
      "def f(x):\n\tif x:\n\t\treturn x  # tab\n\n\n        return None\n",
      "int main() {\n    return 0;                                    \n}\n\n\n\n",
      "\t\t\t  \n \n\r\n   x",
      "12345678901234567890123456789012345678901234567890 3.14159 1,000,000",
      "text with <|begin_of_text|> and <|endoftext|> and <s> </s> <unk> <|im_start|>user<|im_end|> inside",
      "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>",
      "e\u0301 a\u0300 n\u0303 o\u0308 \u1e9b\u0323 Ä vs A\u0308 ﬁ ligature ① ｆｕｌｌ",  // combining marks, compat
      "CamelCaseIdentifier snake_case_name SHOUTING don't DON'T I'M",
      "Ünïcödé – “quotes” — ‘single’ … €100 ¥200 £300",
      "line1\nline2\r\nline3\rline4",
      "   ",
      "\n",
      "a",
      "ąčęėįšųūž ĄČĘĖĮŠŲŪŽ Ελληνικά Русский текст",
      "हिन्दी पाठ और தமிழ் உரை ไทย",
  };
  // A long document (~1 MB): wiki.test.raw's first MB plus docs-val.txt, cut at a line boundary.
  auto wiki = read_text_file(shared_dir() + "/data/wiki.test.raw");
  std::string doc = wiki.is_ok() ? wiki.value().substr(0, 1 << 20) : std::string();
  size_t nl = doc.rfind('\n');
  if (nl != std::string::npos) doc.resize(nl + 1);
  auto val = read_text_file(shared_dir() + "/data/docs-val.txt");
  if (val.is_ok()) doc += val.value().substr(0, 256 << 10);
  c.push_back(doc);
  return c;
}

// Encodes and decodes the corpus with npm `tokenizers` and with tern; compares ids and decoded text, then checks
// tern's own round trip. unicode_normalized: the tokenizer applies NFC (Qwen), so decode(encode(x)) is NFC(x), not
// x; its round trip is then checked as encode(decode(ids)) == ids (normalization is idempotent).
void check(const std::string& tokenizer_json, const std::string& name, bool unicode_normalized = false) {
  const NpmTokenizers* env = npm_tokenizers();
  if (!env) GTEST_SKIP() << "npm/node not on PATH: Hugging Face parity not checked";
  ASSERT_TRUE(env->install_ok) << "npm install failed, see " << env->prefix << "/install.log";
  static const std::vector<std::string> corpus = build_corpus();
  const json ref = hf_reference(*env, tokenizer_json, corpus, name);
  ASSERT_FALSE(ref.is_null());
  auto tok = Tokenizer::load(tokenizer_json);
  ASSERT_TRUE(tok.is_ok()) << tok.status().message();
  compare_with_hf(tok.value(), ref, corpus, name);
  for (size_t i = 0; i < corpus.size(); ++i) {
    // decode(encode(x)) == x for these byte-level (or byte-fallback) tokenizers, the long document included.
    // Not where the text spells a special token: SentencePiece's dummy prefix after it is not reversible.
    std::vector<int32_t> ids = tok.value().encode(corpus[i], false);
    bool has_special = false;
    for (int32_t id : ids) has_special |= tok.value().is_special(id);
    if (has_special) continue;
    if (unicode_normalized) {
      EXPECT_EQ(tok.value().encode(tok.value().decode(ids), false), ids) << name << " round trip of corpus[" << i << "]";
      continue;
    }
    EXPECT_EQ(tok.value().decode(ids), corpus[i]) << name << " round trip of corpus[" << i << "] \""
                                                  << corpus[i].substr(0, 80) << "\"";
  }
}

std::string lenml(const char* pkg) { return lenml_tokenizer(*npm_tokenizers(), std::string("tokenizer-") + pkg); }

TEST(TokenizerNpm, Llama3) {
  if (!npm_tokenizers()) GTEST_SKIP() << "npm/node not on PATH";
  check(lenml("llama3"), "llama3");
}
// Qwen3's tokenizer.json normalizes with NFC before its byte-level BPE (ICU computes it).
TEST(TokenizerNpm, Qwen3) {
  if (!npm_tokenizers()) GTEST_SKIP() << "npm/node not on PATH";
  check(lenml("qwen3"), "qwen3", /*unicode_normalized=*/true);
}
TEST(TokenizerNpm, Llama2) {
  if (!npm_tokenizers()) GTEST_SKIP() << "npm/node not on PATH";
  check(lenml("llama2"), "llama2");
}
TEST(TokenizerNpm, DocsLlama28m) {
  if (!npm_tokenizers()) GTEST_SKIP() << "npm/node not on PATH";
  check(model_dir("docs-llama-28m") + "/tokenizer.json", "docs-llama-28m");
}

}  // namespace
}  // namespace tern::test
