// Hostile input: mutated GBNF, regexes and schemas never crash (every path returns a Status), and whatever
// compiles gives a matcher whose masks and accepts agree.
#include <gtest/gtest.h>

#include <random>

#include "constrain_test_util.h"

namespace tern {
namespace {

std::string mutate(std::string s, std::mt19937& rng) {
  const char pool[] = "()[]{}|*+?\"\\^-.,:#\n 0123456789azAZ$\xC3\xA9\x80\xFF";
  const int edits = 1 + int(rng() % 4);
  for (int e = 0; e < edits && !s.empty(); ++e) {
    const size_t at = rng() % s.size();
    switch (rng() % 3) {
      case 0: s[at] = pool[rng() % (sizeof(pool) - 1)]; break;
      case 1: s.erase(at, 1 + rng() % 3); break;
      default: s.insert(at, 1, pool[rng() % (sizeof(pool) - 1)]); break;
    }
  }
  return s;
}

// Drives a compiled grammar with random allowed tokens: every token in the mask is accepted.
void drive(const std::shared_ptr<const Grammar>& g, const TokenVocabulary& v, std::mt19937& rng) {
  TokenConstraint c(g);
  std::vector<uint32_t> mask(size_t(c.mask_words()));
  for (int step = 0; step < 40 && !c.must_end(); ++step) {
    c.allowed(mask.data());
    std::vector<int32_t> ok;
    for (int64_t t = 0; t < v.size(); ++t)
      if (mask[size_t(t) >> 5] >> (t & 31) & 1) ok.push_back(int32_t(t));
    if (ok.empty()) break;
    const int32_t t = ok[rng() % ok.size()];
    ASSERT_TRUE(c.accept(t).is_ok()) << g->canonical_text();
  }
}

TEST(ConstrainFuzz, MutatedInputsNeverCrash) {
  const auto v = test::byte_vocab({"ab", "\"}", "\",", "12", "\xC3\xA9", "\xA9\"", "true", "{\""});
  std::mt19937 rng(16);
  const std::vector<std::string> gbnf = {
      R"(root ::= "{" ws pair ("," ws pair)* "}"
pair ::= str ":" ws val
val ::= str | [0-9]+ | "true" | root
str ::= "\"" [^"\\]* "\""
ws ::= [ \t\n]*)",
      R"g(root ::= (a | b){2,5} "x"? [^a-c]+
a ::= "a" b?
b ::= "b" | "(" a ")")g"};
  const std::vector<std::string> regexes = {R"(^[A-Z][a-z]{2,8}(-\d+)?$)", R"((ab|c[^x])*\.\w{1,3})"};
  const std::vector<std::string> schemas = {
      R"({"type":"object","properties":{"a":{"type":"string","maxLength":5},"b":{"type":"array","items":{"type":"integer","minimum":-3,"maximum":40}}},"required":["a"]})",
      R"({"$defs":{"n":{"anyOf":[{"type":"null"},{"type":"object","properties":{"next":{"$ref":"#/$defs/n"}}}]}},"$ref":"#/$defs/n"})"};
  int compiled = 0;
  for (int i = 0; i < 400; ++i) {
    auto g1 = compile_gbnf(mutate(gbnf[size_t(i) % gbnf.size()], rng), v);
    if (g1.is_ok()) ++compiled, drive(*g1, v, rng);
    auto g2 = compile_regex(mutate(regexes[size_t(i) % regexes.size()], rng), v);
    if (g2.is_ok()) ++compiled, drive(*g2, v, rng);
    auto g3 = compile_json_schema_text(mutate(schemas[size_t(i) % schemas.size()], rng), v);
    if (g3.is_ok()) ++compiled, drive(*g3, v, rng);
  }
  EXPECT_GT(compiled, 50);  // the mutations leave many inputs valid: the matcher part is exercised too
}

}  // namespace
}  // namespace tern
