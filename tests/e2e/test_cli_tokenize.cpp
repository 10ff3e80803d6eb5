// tern tokenize / detokenize as a user pipes them: reference ids, round trips, and one-line errors.
#include <gtest/gtest.h>

#include <algorithm>
#include <nlohmann/json.hpp>

#include "core/mapped_file.h"
#include "test_support.h"

namespace tern::test {
namespace {

const std::string kDocs = model_dir("docs-llama-28m");

nlohmann::json reference() { return nlohmann::json::parse(*read_text_file(kDocs + "/reference.json")); }

void expect_one_line_error(const CommandResult& r, const std::string& must_mention) {
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_EQ(r.out, "");
  EXPECT_NE(r.err.find("tern: error: "), std::string::npos) << r.err;
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
  EXPECT_NE(r.err.find(must_mention), std::string::npos) << r.err;
}

TEST(CliTokenize, ReferencePromptsGiveTheReferenceIds) {
  for (const auto& p : reference()["prompts"]) {
    auto r = run_tern("tokenize --tokenizer '" + kDocs + "'", p["text"].get<std::string>());
    ASSERT_EQ(r.exit_code, 0) << r.err;
    EXPECT_EQ(nlohmann::json::parse(r.out), p["ids"]) << p["text"];
    EXPECT_EQ(r.out.back(), '\n');
  }
}

// Invalid UTF-8 on stdin is tokenized, not refused (docs/tokenizer.md): the byte-level model encodes the bytes,
// and detokenize prints valid UTF-8 with U+FFFD for each invalid subpart.
TEST(CliTokenize, InvalidUtf8InputIsEncodedNotRejected) {
  const std::string raw = "ab\xFF\xFE cd \xE4\xB8";
  auto r = run_tern("tokenize --no-special --tokenizer '" + kDocs + "'", raw);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto ids = nlohmann::json::parse(r.out);
  ASSERT_TRUE(ids.is_array());
  EXPECT_GE(ids.size(), 4u);
  auto d = run_tern("detokenize --tokenizer '" + kDocs + "'", ids.dump());
  ASSERT_EQ(d.exit_code, 0) << d.err;
  EXPECT_EQ(d.out, "ab\xEF\xBF\xBD\xEF\xBF\xBD cd \xEF\xBF\xBD");
}

TEST(CliTokenize, AcceptsTheTokenizerJsonFileAndTheModelAlias) {
  const auto ref = reference();
  const auto& p = ref["prompts"][0];
  auto a = run_tern("tokenize --tokenizer '" + kDocs + "/tokenizer.json'", p["text"].get<std::string>());
  auto b = run_tern("tokenize -m '" + kDocs + "'", p["text"].get<std::string>());
  ASSERT_EQ(a.exit_code, 0) << a.err;
  ASSERT_EQ(b.exit_code, 0) << b.err;
  EXPECT_EQ(nlohmann::json::parse(a.out), p["ids"]);
  EXPECT_EQ(a.out, b.out);
}

TEST(CliTokenize, NoSpecialDropsTheBos) {
  const auto ref = reference();
  const auto& p = ref["prompts"][1];
  auto r = run_tern("tokenize --no-special --tokenizer '" + kDocs + "'", p["text"].get<std::string>());
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto want = p["ids"];
  ASSERT_EQ(want[0], 0) << "reference ids start with BOS <|begin_of_text|>";
  want.erase(want.begin());
  EXPECT_EQ(nlohmann::json::parse(r.out), want);
}

TEST(CliTokenize, EmptyInputIsJustTheBos) {
  auto r = run_tern("tokenize --tokenizer '" + kDocs + "'", "");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "[0]\n");
  auto n = run_tern("tokenize --no-special --tokenizer '" + kDocs + "'", "");
  EXPECT_EQ(n.out, "[]\n");
}

TEST(CliTokenize, DetokenizeRoundTripsTheText) {
  const std::string text = "def fibonacci(n):\n    return n  # ünïcödé, 漢字, emoji 👍🏽\n";
  auto ids = run_tern("tokenize --no-special --tokenizer '" + kDocs + "'", text);
  ASSERT_EQ(ids.exit_code, 0) << ids.err;
  auto back = run_tern("detokenize --tokenizer '" + kDocs + "'", ids.out);
  ASSERT_EQ(back.exit_code, 0) << back.err;
  EXPECT_EQ(back.out, text);
}

TEST(CliTokenize, DetokenizeKeepsOrSkipsSpecialTokens) {
  const auto ref = reference();
  const auto& p = ref["prompts"][0];
  const std::string ids = p["ids"].dump();
  auto kept = run_tern("detokenize --tokenizer '" + kDocs + "'", ids);
  ASSERT_EQ(kept.exit_code, 0) << kept.err;
  EXPECT_EQ(kept.out, "<|begin_of_text|>" + p["text"].get<std::string>());
  auto skipped = run_tern("detokenize --skip-special --tokenizer '" + kDocs + "'", ids);
  ASSERT_EQ(skipped.exit_code, 0) << skipped.err;
  EXPECT_EQ(skipped.out, p["text"].get<std::string>());
}

TEST(CliTokenize, BadInputIsAOneLineError) {
  const std::string d = "detokenize --tokenizer '" + kDocs + "'";
  expect_one_line_error(run_tern(d, "[1, 2"), "not valid JSON");
  expect_one_line_error(run_tern(d, "{\"ids\": [1]}"), "JSON array");
  expect_one_line_error(run_tern(d, "[1, 2.5]"), "element 1 is not an integer");
  expect_one_line_error(run_tern(d, "[1, \"2\"]"), "element 1 is not an integer");
  expect_one_line_error(run_tern(d, "[-1]"), "outside the vocabulary");
  expect_one_line_error(run_tern(d, "[99999999]"), "outside the vocabulary");
  expect_one_line_error(run_tern(d, "[18446744073709551615]"), "outside the vocabulary");
  expect_one_line_error(run_tern("tokenize --tokenizer /nonexistent/dir", "hi"), "/nonexistent/dir");
}

TEST(CliTokenize, MissingTokenizerOptionIsAUsageError) {
  auto r = run_tern("tokenize", "hi");
  EXPECT_NE(r.exit_code, 0);
  EXPECT_EQ(r.out, "");
  EXPECT_NE(r.err.find("--tokenizer"), std::string::npos) << r.err;
}

}  // namespace
}  // namespace tern::test
