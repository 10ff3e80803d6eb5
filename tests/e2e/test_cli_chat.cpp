// tern chat driven through a pipe. These tests need the chat-template renderer
// (src/text/chat_template/, issue 3): they render docs-llama-28m's ChatML template.
#include <gtest/gtest.h>
#include <pty.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fstream>
#include <nlohmann/json.hpp>
#include <regex>
#include <sstream>

#include "core/mapped_file.h"
#include "test_support.h"

namespace tern::test {
namespace {

const std::string kDocs = model_dir("docs-llama-28m");

std::string slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

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

struct TurnStats {
  int64_t prompt = 0, reused = 0, reply = 0;
};
// stderr: "[tern] prompt N tokens (M reused from earlier turns), reply K tokens in ..." once per turn.
std::vector<TurnStats> turn_stats(const std::string& err) {
  std::vector<TurnStats> turns;
  const std::regex re(R"(prompt (\d+) tokens \((\d+) reused from earlier turns\), reply (\d+) tokens)");
  for (std::sregex_iterator it(err.begin(), err.end(), re), end; it != end; ++it) {
    turns.push_back({std::stoll((*it)[1]), std::stoll((*it)[2]), std::stoll((*it)[3])});
  }
  return turns;
}

// The conversation's KV cache is kept across turns: turn 2 reuses everything turn 1 computed (its prompt
// and the reply fed back) and computes only the tokens it adds.
TEST(CliChat, TheNextTurnComputesOnlyTheTokensItAdds) {
  auto r = run_tern("chat -m '" + kDocs + "' --temp 0 -n 6", "hello\nwhat is a kernel?\n");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto t = turn_stats(r.err);
  ASSERT_EQ(t.size(), 2u) << r.err;
  EXPECT_EQ(t[0].reused, 0);
  // The reply's last token is fed back unless the reply ended at the length limit.
  EXPECT_GE(t[1].reused, t[0].prompt + t[0].reply - 1) << r.err;
  EXPECT_LT(t[1].reused, t[1].prompt);
  // (That the reply equals a fresh run's is test_generation_session.cpp's.)
}

// In a terminal (a pseudo-terminal here) lines are read with libedit: the up arrow recalls the last line,
// so "hello", then up-arrow + Enter, asks the same question twice (a plain read would send "\x1b[A").
TEST(CliChat, ArrowKeysRecallEarlierLinesInATerminal) {
  TempDir dir;
  const std::string err_file = dir.file("stderr");
  int master = -1;
  const pid_t pid = forkpty(&master, nullptr, nullptr, nullptr);
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    const std::string cmd =
        std::string("exec '") + TERN_BINARY + "' chat -m '" + kDocs + "' --temp 0 -n 4 -t 1 2>'" + err_file + "'";
    execl("/bin/sh", "sh", "-c", cmd.c_str(), static_cast<char*>(nullptr));
    _exit(127);
  }
  // Typed ahead: the terminal queues it until libedit reads it, one line per turn.
  const std::string keys = "hello\r\x1b[A\r/exit\r";
  ASSERT_EQ(write(master, keys.data(), keys.size()), ssize_t(keys.size()));
  std::string screen;
  char buf[4096];
  for (;;) {  // drain the terminal until the chat exits (EIO once the child side closes)
    const ssize_t n = read(master, buf, sizeof buf);
    if (n <= 0) break;
    screen.append(buf, size_t(n));
  }
  int status = 0;
  waitpid(pid, &status, 0);
  close(master);
  ASSERT_TRUE(WIFEXITED(status)) << screen;
  EXPECT_EQ(WEXITSTATUS(status), 0) << screen;
  const std::string err = slurp(err_file);
  const auto t = turn_stats(err);
  ASSERT_EQ(t.size(), 2u) << err << screen;
  // Through a pipe, "hello" twice gives these very prompts.
  const auto piped = turn_stats(run_tern("chat -m '" + kDocs + "' --temp 0 -n 4 -t 1", "hello\nhello\n").err);
  ASSERT_EQ(piped.size(), 2u);
  EXPECT_EQ(t[1].prompt, piped[1].prompt) << err;
  EXPECT_EQ(t[1].reused, piped[1].reused) << err;
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
