#include <gtest/gtest.h>

#include "runtime/generator.h"

namespace tern {
namespace {

TEST(StopMatcher, StopStringSpanningPiecesIsNeverEmitted) {
  StopMatcher m({"</end>"});
  std::string out;
  for (const char* piece : {"Hello ", "wor", "ld</", "en", "d> more"}) out += m.push(piece);
  EXPECT_TRUE(m.stopped());
  EXPECT_EQ(out, "Hello world");
  EXPECT_EQ(m.flush(), "");
}

TEST(StopMatcher, HeldBackPrefixIsReleasedWhenItDiverges) {
  StopMatcher m({"STOP"});
  EXPECT_EQ(m.push("abc ST"), "abc ");
  EXPECT_EQ(m.push("ART"), "START");
  EXPECT_FALSE(m.stopped());
  EXPECT_EQ(m.push("x S"), "x ");
  EXPECT_EQ(m.flush(), "S");
}

TEST(StopMatcher, EarliestOfSeveralStopStringsWins) {
  StopMatcher m({"world", "lo w"});
  EXPECT_EQ(m.push("hello world"), "hel");
  EXPECT_TRUE(m.stopped());
  EXPECT_EQ(m.matched(), "lo w");  // Anthropic's stop_sequence names it
  StopMatcher same_start({"lo wo", "lo"});
  EXPECT_EQ(same_start.push("hello world"), "hel");
  EXPECT_EQ(same_start.matched(), "lo");
}

TEST(StopMatcher, NoStopsPassesEverythingThrough) {
  StopMatcher m({});
  EXPECT_EQ(m.push("abc"), "abc");
  EXPECT_EQ(m.flush(), "");
}

TEST(StopMatcher, MultibyteStopString) {
  StopMatcher m({"。"});  // 3 UTF-8 bytes, arriving one at a time
  std::string out = m.push("好\xe3");
  out += m.push("\x80");
  EXPECT_EQ(out, "好");
  out += m.push("\x82!");
  EXPECT_TRUE(m.stopped());
  EXPECT_EQ(out, "好");
}

}  // namespace
}  // namespace tern
