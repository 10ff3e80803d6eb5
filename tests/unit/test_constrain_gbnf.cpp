// GBNF parsing, the byte-level automaton and the matcher on a small byte vocabulary.
#include <gtest/gtest.h>

#include "constrain_test_util.h"

#include <iterator>
#include <set>

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
  EXPECT_NE(msg("root ::= <[1000]>").find("not a special token"), std::string::npos);  // past the vocabulary
  EXPECT_NE(msg("root ::= <[65]>").find("not a special token"), std::string::npos);    // "A" is ordinary text
  EXPECT_NE(msg("root ::= <think>").find("<think> is not a special token"), std::string::npos);
  EXPECT_NE(msg("root ::= !<[256]>").find("not supported"), std::string::npos);
  EXPECT_NE(msg("root ::= <[abc").find("unterminated"), std::string::npos);
  EXPECT_NE(msg("root ::= <>").find("empty token"), std::string::npos);
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

// Token terminals (llama.cpp's `<[id]>` and `<text>`, plus `<[TEXT]>` for bracketed special tokens such as
// Mistral's [TOOL_CALLS]): a special token is allowed exactly where the grammar names it; ordinary tokens that
// spell its text, and the 0xFF byte its internal code starts with, never stand in for it.
struct SpecialVocab {
  TokenVocabulary v;
  int32_t tool_calls, think, eos, text_tool_calls;
};
SpecialVocab special_vocab() {
  std::vector<std::string> bytes;
  for (int b = 0; b < 256; ++b) bytes.push_back(std::string(1, char(b)));
  bytes.push_back("[TOOL_CALLS]");  // 256: the same text as an ordinary token
  bytes.push_back("");              // 257 [TOOL_CALLS]
  bytes.push_back("");              // 258 <think>
  bytes.push_back("");              // 259 </s>
  bytes.push_back(std::string("x\xFF" "y"));  // 260: an ordinary token holding 0xFF (never usable)
  auto v = TokenVocabulary::from_bytes(bytes, {{257, "[TOOL_CALLS]"}, {258, "<think>"}, {259, "</s>"}});
  EXPECT_TRUE(v.is_ok());
  return {*v, 257, 258, 259, 256};
}

std::set<int32_t> allowed_ids(TokenConstraint& c) {
  std::vector<uint32_t> mask(size_t(c.mask_words()));
  c.allowed(mask.data());
  std::set<int32_t> out;
  for (int64_t t = 0; t < c.vocab_size(); ++t)
    if (mask[size_t(t) >> 5] >> (t & 31) & 1) out.insert(int32_t(t));
  return out;
}

TEST(ConstrainGbnfTokens, ParseAndPrintTheThreeForms) {
  auto sv = special_vocab();
  auto g = gbnf("root ::= <[257]> \"a\" | <think> \"b\" | <[TOOL_CALLS]>+ \"c\"", sv.v);
  ASSERT_TRUE(g);
  EXPECT_NE(g->canonical_text().find("<[257]> \"a\" | <think> \"b\" | <[TOOL_CALLS]>+ \"c\""), std::string::npos)
      << g->canonical_text();
  auto g2 = gbnf(g->canonical_text(), sv.v);
  EXPECT_EQ(g->canonical_text(), g2->canonical_text());
  // Rule renaming (tool-call grammar composition) leaves token terminals alone.
  auto renamed = gbnf_prefix_rules(g->canonical_text(), "p-");
  ASSERT_TRUE(renamed.is_ok());
  EXPECT_NE(renamed->find("p-root ::= <[257]>"), std::string::npos) << *renamed;
}

TEST(ConstrainGbnfTokens, TheSpecialTokenIsAllowedExactlyWhereTheGrammarNamesIt) {
  auto sv = special_vocab();
  auto g = gbnf("root ::= \"a\" <[TOOL_CALLS]> \"b\" <think>?", sv.v);
  ASSERT_TRUE(g);
  TokenConstraint c(g);
  EXPECT_EQ(allowed_ids(c), (std::set<int32_t>{'a'}));
  ASSERT_TRUE(c.accept('a').is_ok());
  EXPECT_EQ(allowed_ids(c), (std::set<int32_t>{sv.tool_calls}));  // not the ordinary "[TOOL_CALLS]", not "["
  EXPECT_FALSE(c.accept(sv.text_tool_calls).is_ok());
  EXPECT_FALSE(c.accepts_bytes("[TOOL_CALLS]"));
  EXPECT_FALSE(c.accept(0xFF).is_ok());  // the byte token for 0xFF spells nothing
  EXPECT_FALSE(c.accept(sv.think).is_ok());
  EXPECT_FALSE(c.can_end());
  ASSERT_TRUE(c.accept(sv.tool_calls).is_ok());
  EXPECT_EQ(allowed_ids(c), (std::set<int32_t>{'b'}));
  ASSERT_TRUE(c.accept('b').is_ok());
  EXPECT_TRUE(c.can_end());
  EXPECT_FALSE(c.must_end());
  EXPECT_EQ(allowed_ids(c), (std::set<int32_t>{sv.think}));
  ASSERT_TRUE(c.accept(sv.think).is_ok());
  EXPECT_TRUE(c.must_end());
  c.rollback(2);
  EXPECT_EQ(allowed_ids(c), (std::set<int32_t>{'b'}));
}

TEST(ConstrainGbnfTokens, FreeTextNeverAllowsASpecialTokenNorTheByte0xFF) {
  auto sv = special_vocab();
  auto g = gbnf("root ::= .* <[259]>?", sv.v);
  ASSERT_TRUE(g);
  TokenConstraint c(g);
  const std::set<int32_t> ids = allowed_ids(c);
  EXPECT_TRUE(ids.count(sv.text_tool_calls));  // the text is text
  EXPECT_TRUE(ids.count(sv.eos));              // named
  EXPECT_FALSE(ids.count(sv.tool_calls));
  EXPECT_FALSE(ids.count(sv.think));
  EXPECT_FALSE(ids.count(0xFF));
  EXPECT_FALSE(ids.count(260));
  EXPECT_EQ(sv.v.bytes(sv.tool_calls), "");  // special tokens spell no text
  EXPECT_EQ(sv.v.bytes(0xFF), "");
  EXPECT_TRUE(sv.v.is_special(sv.tool_calls));
  EXPECT_FALSE(sv.v.is_special(sv.text_tool_calls));
  EXPECT_EQ(sv.v.special_token("[TOOL_CALLS]"), sv.tool_calls);
  EXPECT_FALSE(sv.v.special_token("[ARGS]").has_value());
}

// Masks with token terminals against brute force (each token's spelling fed to the matcher), over random walks.
TEST(ConstrainGbnfTokens, MasksMatchBruteForce) {
  auto sv = special_vocab();
  for (const char* text : {"root ::= ( [a-c]+ <think> )* <[TOOL_CALLS]> ( \"[\" [a-z]* \"]\" | t )\nt ::= <think> .",
                           "root ::= x <[259]>\nx ::= ( [^<] | <think> )*"}) {
    auto g = gbnf(text, sv.v);
    ASSERT_TRUE(g);
    uint32_t seed = 3;
    for (int walk = 0; walk < 10; ++walk) {
      TokenConstraint c(g);
      for (int step = 0; step < 30 && !c.must_end(); ++step) {
        const std::set<int32_t> ids = allowed_ids(c);
        for (int64_t t = 0; t < sv.v.size(); ++t) {
          const std::string& sp = sv.v.spelling(int32_t(t));
          ASSERT_EQ(ids.count(int32_t(t)) == 1, !sp.empty() && c.accepts_bytes(sp)) << text << " token " << t;
        }
        if (ids.empty()) break;
        seed = seed * 1103515245u + 12345u;
        auto it = ids.begin();
        std::advance(it, (seed >> 8) % ids.size());
        ASSERT_TRUE(c.accept(*it).is_ok());
      }
    }
  }
}

}  // namespace
}  // namespace tern
