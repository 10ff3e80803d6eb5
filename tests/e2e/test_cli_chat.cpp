// tern chat driven through a pipe. These tests need the chat-template renderer
// (src/model/chat_template/, issue 3): they render docs-llama-28m's ChatML template.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "core/mapped_file.h"
#include "test_support.h"

namespace tern::test {
namespace {

const std::string kDocs = model_dir("docs-llama-28m");

std::vector<std::string> stdout_lines(const std::string& out) {
  std::vector<std::string> lines;
  size_t at = 0;
  while (at < out.size()) {
    size_t nl = out.find('\n', at);
    if (nl == std::string::npos) nl = out.size();
    lines.push_back(out.substr(at, nl - at));
    at = nl + 1;
  }
  return lines;
}

// [needs the chat-template renderer] two turns around a /reset, greedy: each reply is streamed and ends with a
// newline, and after /reset the conversation starts over, so the same question gets the same reply.
TEST(CliChat, RepliesResetsAndExitsThroughAPipe) {
  auto r = run_tern("chat -m '" + kDocs + "' --temp 0 -n 8", "hello\n/reset\nhi\n/exit\n");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out.find("> "), std::string::npos) << "no prompt marker when stdin is not a terminal";
  EXPECT_NE(r.err.find("finish:"), std::string::npos) << r.err;
  EXPECT_GE(std::count(r.out.begin(), r.out.end(), '\n'), 2) << r.out;
  EXPECT_GT(r.out.size(), 2u) << "the model printed something";
  EXPECT_EQ(r.out.find("<|im_end|>"), std::string::npos) << "the end-of-turn token stops the reply, unprinted";

  auto reset = run_tern("chat -m '" + kDocs + "' --temp 0 -n 8 -q", "hello\n/reset\nhello\n");
  ASSERT_EQ(reset.exit_code, 0) << reset.err;
  auto lines = stdout_lines(reset.out);
  ASSERT_GE(lines.size(), 2u) << reset.out;
  // The first reply may itself span lines; the output is the same reply twice.
  const std::string one = run_tern("chat -m '" + kDocs + "' --temp 0 -n 8 -q", "hello\n").out;
  EXPECT_EQ(reset.out, one + one);
}

// [needs the chat-template renderer] without /reset the second turn sees the first, so its prompt is longer.
TEST(CliChat, HistoryGrowsAcrossTurnsAndEofQuits) {
  auto r = run_tern("chat -m '" + kDocs + "' --temp 0 -n 4 --system 'You answer briefly.'", "hello\nhello\n");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  // stderr: "[tern] prompt N tokens, ..." once per turn.
  std::vector<int> prompts;
  for (size_t at = r.err.find("prompt "); at != std::string::npos; at = r.err.find("prompt ", at + 1)) {
    prompts.push_back(std::stoi(r.err.substr(at + 7)));
  }
  ASSERT_EQ(prompts.size(), 2u) << r.err;
  EXPECT_GT(prompts[1], prompts[0] + 4);
}

TEST(CliChat, BadOptionsAreOneLineErrors) {
  auto r = run_tern("chat -m /nonexistent/model", "hi\n");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_EQ(r.out, "");
  EXPECT_NE(r.err.find("tern: error: "), std::string::npos) << r.err;
  auto t = run_tern("chat -m '" + kDocs + "' --temp -1", "hi\n");
  EXPECT_EQ(t.exit_code, 1);
  EXPECT_NE(t.err.find("tern: error: "), std::string::npos) << t.err;
}

}  // namespace
}  // namespace tern::test
