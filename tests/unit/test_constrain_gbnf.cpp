// GBNF parsing, the byte-level automaton and the matcher on a small byte vocabulary.
#include <gtest/gtest.h>

#include "constrain_test_util.h"

namespace tern {
namespace {

using test::allowed_set;
using test::byte_vocab;
using test::feed;
using test::full_match;

std::shared_ptr<const Grammar> gbnf(const std::string& text, const TokenVocabulary& v, const GrammarLimits& l = {}) {
  auto g = compile_gbnf(text, v, l);
  EXPECT_TRUE(g.is_ok()) << g.status().message() << "\n" << text;
  return g.is_ok() ? *g : nullptr;
}

TEST(ConstrainGbnf, LiteralsAlternationAndGroups) {
  auto v = byte_vocab();
  auto g = gbnf(R"(root ::= "ab" ( "c" | "de" ) # comment
  "!")", v);
  EXPECT_TRUE(full_match(g, "abc!"));
  EXPECT_TRUE(full_match(g, "abde!"));
  EXPECT_FALSE(full_match(g, "abd!"));
  EXPECT_FALSE(full_match(g, "abc"));
}

TEST(ConstrainGbnf, RepetitionOperators) {
  auto v = byte_vocab();
  auto g = gbnf(R"(root ::= "a"* "b"+ "c"? "d"{2} "e"{1,3} "f"{2,} "g"{,1})", v);
  EXPECT_TRUE(full_match(g, "bddeff"));
  EXPECT_TRUE(full_match(g, "aaabbbcddeeefffg"));
  EXPECT_FALSE(full_match(g, "ddeff"));          // b+ needs one
  EXPECT_FALSE(full_match(g, "bdeff"));          // d{2}
  EXPECT_FALSE(full_match(g, "bddeeeeff"));      // e{1,3}
  EXPECT_FALSE(full_match(g, "bddef"));          // f{2,}
  EXPECT_FALSE(full_match(g, "bddeffgg"));       // g{,1}
}

TEST(ConstrainGbnf, CharClassesRangesNegationAndEscapes) {
  auto v = byte_vocab();
  auto g = gbnf(R"(root ::= [a-c0-9_] [^a-z\n] "\x41\u00e9\t\"\\" .)", v);
  EXPECT_TRUE(full_match(g, "b#A\xC3\xA9\t\"\\\xE2\x82\xAC"));  // . takes a 3-byte character
  EXPECT_FALSE(full_match(g, "d#A\xC3\xA9\t\"\\x"));
  EXPECT_FALSE(full_match(g, "bzA\xC3\xA9\t\"\\x"));
  EXPECT_FALSE(full_match(g, "b\nA\xC3\xA9\t\"\\x"));
}

TEST(ConstrainGbnf, RulesRecursionAndMultilineBodies) {
  auto v = byte_vocab();
  auto g = gbnf(R"(
root ::= list
list ::=
  "[" (
    item ("," item)*
  )? "]"
item ::= [0-9]+ | list
)", v);
  EXPECT_TRUE(full_match(g, "[]"));
  EXPECT_TRUE(full_match(g, "[1,[2,[[]]],33]"));
  EXPECT_FALSE(full_match(g, "[1,]"));
  EXPECT_FALSE(full_match(g, "[[1]"));
}

TEST(ConstrainGbnf, MaskListsExactlyTheNextTokens) {
  auto v = byte_vocab({"ab", "abc", "abx", "cd", "b\"", "\xC3"});
  auto g = gbnf(R"(root ::= "a" ( "bc" | "bd" ) [é]?)", v);
  TokenConstraint c(g);
  EXPECT_EQ(allowed_set(c, v), (std::set<std::string>{"a", "ab", "abc"}));
  ASSERT_TRUE(c.accept('a').is_ok());
  EXPECT_EQ(allowed_set(c, v), (std::set<std::string>{"b"}));
  ASSERT_TRUE(c.accept('b').is_ok());
  EXPECT_EQ(allowed_set(c, v), (std::set<std::string>{"c", "d"}));  // not "cd": é or the end follows "c"
  EXPECT_FALSE(c.can_end());
  ASSERT_TRUE(c.accept('c').is_ok());
  EXPECT_TRUE(c.can_end());
  EXPECT_FALSE(c.must_end());
  // é = C3 A9: its first byte alone (as a byte token and as the multi-byte token "\xC3") is allowed.
  EXPECT_EQ(allowed_set(c, v), (std::set<std::string>{"\xC3"}));
  ASSERT_TRUE(c.accept(0xC3).is_ok());
  EXPECT_FALSE(c.can_end());  // half a character
  ASSERT_TRUE(c.accept(0xA9).is_ok());
  EXPECT_TRUE(c.must_end());
}

TEST(ConstrainGbnf, MultiByteTokensCrossRuleBoundaries) {
  // Tokens spanning the end of a callee rule and the caller's continuation ("b\"" closes the string).
  auto v = byte_vocab({"ab", "b\"", "\"x", "\"}", "x\"}"});
  auto g = gbnf(R"(root ::= "{" str "}"
str ::= "\"" [a-z]* "\"")", v);
  TokenConstraint c(g);
  ASSERT_TRUE(feed(c, "{\"a"));
  const auto s = allowed_set(c, v);
  EXPECT_TRUE(s.count("ab"));
  EXPECT_TRUE(s.count("b\""));
  EXPECT_TRUE(s.count("\"}"));
  EXPECT_FALSE(s.count("\"x"));  // the string is closed: 'x' cannot follow
  EXPECT_TRUE(s.count("x\"}"));
  const int32_t close = 256 + 3;  // "\"}"
  ASSERT_TRUE(c.accept(close).is_ok());
  EXPECT_TRUE(c.must_end());
}

TEST(ConstrainGbnf, RejectedTokenLeavesStateAndRollbackRestores) {
  auto v = byte_vocab();
  auto g = gbnf(R"(root ::= "ab" | "ac")", v);
  TokenConstraint c(g);
  EXPECT_FALSE(c.accept('b').is_ok());
  EXPECT_EQ(c.accepted(), 0);
  ASSERT_TRUE(feed(c, "ab"));
  EXPECT_TRUE(c.must_end());
  c.rollback(1);
  EXPECT_EQ(c.accepted(), 1);
  EXPECT_EQ(allowed_set(c, v), (std::set<std::string>{"b", "c"}));
  ASSERT_TRUE(c.accept('c').is_ok());
  EXPECT_TRUE(c.must_end());
  c.rollback(5);  // more than accepted: back to the start
  EXPECT_EQ(c.accepted(), 0);
  EXPECT_FALSE(c.accept(int32_t(v.size() - 1)).is_ok());  // the special token spells nothing
}

TEST(ConstrainGbnf, NullableRootCanEndAtOnce) {
  auto v = byte_vocab();
  auto g = gbnf(R"(root ::= "x"*)", v);
  TokenConstraint c(g);
  EXPECT_TRUE(c.can_end());
  EXPECT_FALSE(c.must_end());
  auto e = gbnf(R"(root ::= "")", v);
  TokenConstraint d(e);
  EXPECT_TRUE(d.must_end());
}

TEST(ConstrainGbnf, RightRecursionDoesNotGrowTheStack) {
  auto v = byte_vocab();
  auto g = gbnf(R"(root ::= "x" root | "y")", v);
  TokenConstraint c(g);
  ASSERT_TRUE(feed(c, std::string(20000, 'x')));
  ASSERT_TRUE(c.accept('y').is_ok());
  EXPECT_TRUE(c.must_end());
}

TEST(ConstrainGbnf, DeepNestingWorks) {
  auto v = byte_vocab();
  auto g = gbnf(R"g(root ::= "(" root ")" | "")g", v);
  TokenConstraint c(g);
  ASSERT_TRUE(feed(c, std::string(5000, '(') + std::string(5000, ')')));
  EXPECT_TRUE(c.must_end());
}

TEST(ConstrainGbnf, ErrorsNameTheProblem) {
  auto v = byte_vocab();
  auto msg = [&](const std::string& text, GrammarLimits l = {}) {
    auto g = compile_gbnf(text, v, l);
    EXPECT_FALSE(g.is_ok()) << text;
    return g.is_ok() ? std::string() : g.status().message();
  };
  EXPECT_NE(msg("root ::= foo").find("undefined rule 'foo'"), std::string::npos);
  EXPECT_NE(msg("a ::= \"x\"").find("no 'root' rule"), std::string::npos);
  EXPECT_NE(msg("root ::= \"x\"\nroot ::= \"y\"").find("defined twice"), std::string::npos);
  EXPECT_NE(msg("root ::= \"abc").find("unterminated"), std::string::npos);
  EXPECT_NE(msg("root ::= root \"x\" | \"y\"").find("left recursion"), std::string::npos);
  EXPECT_NE(msg("root ::= a\na ::= \"x\" a").find("can never finish"), std::string::npos);
  EXPECT_NE(msg("root ::= \"x\"{99999999}").find("limit"), std::string::npos);
  GrammarLimits small;
  small.max_states = 1000;
  EXPECT_NE(msg("root ::= (\"ab\"{100}){100}", small).find("too large"), std::string::npos);
  EXPECT_NE(msg("root ::= " + std::string(200, '(') + "\"x\"" + std::string(200, ')')).find("nesting"), std::string::npos);
  EXPECT_NE(msg("root ::= <[1000]>").find("not supported"), std::string::npos);
  EXPECT_NE(msg("root ::= \"\\q\"").find("unknown escape"), std::string::npos);
  EXPECT_NE(msg("root ::= [z-a]").find("range"), std::string::npos);
}

TEST(ConstrainGbnf, CanonicalTextRoundTrips) {
  auto v = byte_vocab();
  auto g = gbnf(R"(root ::= a+ [^"\]x-z] "q\"\n" (b | "c"){2,3}
a ::= "a"
b ::= .)", v);
  auto g2 = gbnf(g->canonical_text(), v);
  EXPECT_EQ(g->canonical_text(), g2->canonical_text());
}

}  // namespace
}  // namespace tern
