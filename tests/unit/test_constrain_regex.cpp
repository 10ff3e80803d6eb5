// Regex -> grammar.
#include <gtest/gtest.h>

#include "constrain_test_util.h"

namespace tern {
namespace {

using test::byte_vocab;
using test::full_match;

std::shared_ptr<const Grammar> rx(const std::string& p, const TokenVocabulary& v) {
  auto g = compile_regex(p, v);
  EXPECT_TRUE(g.is_ok()) << g.status().message() << " for " << p;
  return g.is_ok() ? *g : nullptr;
}

TEST(ConstrainRegex, CoreSyntax) {
  auto v = byte_vocab();
  auto g = rx(R"(^(?:[A-Z][a-z]+|\d{2,3})-(x|yz)*\.?$)", v);
  EXPECT_TRUE(full_match(g, "Hello-"));
  EXPECT_TRUE(full_match(g, "123-xyzx."));
  EXPECT_FALSE(full_match(g, "1-x"));
  EXPECT_FALSE(full_match(g, "Hello-y"));
  auto e = rx(R"(\w+\s\S\W[^\d\s]\x41\u00e9.)", v);
  EXPECT_TRUE(full_match(e, "ab_9 x!zA\xC3\xA9q"));
  EXPECT_FALSE(full_match(e, "ab 9 x!1A\xC3\xA9q"));
  auto dot = rx("a.b", v);
  EXPECT_FALSE(full_match(dot, "a\nb"));  // . excludes line breaks
  EXPECT_TRUE(full_match(dot, "a\xF0\x9F\x98\x80" "b"));
  auto lazy = rx("a+?b{1,}?", v);
  EXPECT_TRUE(full_match(lazy, "aab"));
  auto lit = rx("a{b", v);  // a brace that is no quantifier is a literal
  EXPECT_TRUE(full_match(lit, "a{b"));
}

TEST(ConstrainRegex, UnsupportedSyntaxIsNamed) {
  auto v = byte_vocab();
  auto msg = [&](const std::string& p) {
    auto g = compile_regex(p, v);
    EXPECT_FALSE(g.is_ok()) << p;
    return g.is_ok() ? std::string() : g.status().message();
  };
  EXPECT_NE(msg("(a)\\1").find("backreferences"), std::string::npos);
  EXPECT_NE(msg("a(?=b)").find("lookaround"), std::string::npos);
  EXPECT_NE(msg("\\bword").find("\\b"), std::string::npos);
  EXPECT_NE(msg("\\p{L}").find("\\p"), std::string::npos);
  EXPECT_NE(msg("a^b").find("'^'"), std::string::npos);
  EXPECT_NE(msg("a++").find("possessive"), std::string::npos);
  EXPECT_NE(msg("(ab").find("')'"), std::string::npos);
  EXPECT_NE(msg("*a").find("quantifier"), std::string::npos);
  EXPECT_NE(msg("a{5,2}").find("max < min"), std::string::npos);
  EXPECT_NE(msg("a{1000000}").find("limit"), std::string::npos);
  EXPECT_NE(msg(std::string(1000, '(')).find("deeply"), std::string::npos);
}

}  // namespace
}  // namespace tern
