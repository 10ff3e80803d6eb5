// The mask is exact: at every step of random walks, token t is in allowed() iff its bytes continue the text
// (checked byte by byte with accepts_bytes), on grammars that exercise calls, pop points inside tokens, partial
// UTF-8, long lexical chains whose positions share short-token masks, and tokens longer than kShortTokenBytes.
#include <gtest/gtest.h>

#include <random>

#include "constrain_test_util.h"

namespace tern {
namespace {

TEST(ConstrainMaskExact, MaskEqualsBruteForceOnRandomWalks) {
  std::vector<std::string> extra = {"ab", "\"", "\",", "\"}", "x\"", "xx", "xxxxxxxxxxxxxxxxxxxx",
                                    "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\"", "\xC3", "\xA9", "\xC3\xA9", "\xA9x",
                                    "é\"}", "12", "345", ", \"", "\": ", "{\"", "\"]", "true", "null}", " ",
                                    "\n  ", "aé", "xxxxxxxxxxxxxxxxx\"}"};
  const auto v = test::byte_vocab(extra);
  const std::vector<std::string> grammars = {
      // JSON-ish with calls: strings close inside multi-byte tokens.
      R"(root ::= "{" ws ( pair ( "," ws pair )* )? "}"
pair ::= str ":" ws val
val ::= str | [0-9]+ | "true" | "null" | root
str ::= "\"" [^"\\]* "\""
ws ::= " "?)",
      // A long bounded chain (positions far from the end share short masks) followed by the caller.
      R"(root ::= "[" s "]"
s ::= "\"" [^"]{0,60} "\"")",
      R"(root ::= ( "x"{3,45} "\"" ) | ( [a-zé]{2,30} ))"};
  std::mt19937 rng(7);
  for (const auto& text : grammars) {
    auto g = compile_gbnf(text, v);
    ASSERT_TRUE(g.is_ok()) << g.status().message();
    for (int walk = 0; walk < 12; ++walk) {
      TokenConstraint c(*g);
      std::vector<uint32_t> mask(size_t(c.mask_words()));
      for (int step = 0; step < 60 && !c.must_end(); ++step) {
        c.allowed(mask.data());
        std::vector<int32_t> ok;
        for (int64_t t = 0; t < v.size(); ++t) {
          const bool in_mask = mask[size_t(t) >> 5] >> (t & 31) & 1;
          const std::string& b = v.bytes(int32_t(t));
          const bool brute = !b.empty() && c.accepts_bytes(b);
          ASSERT_EQ(in_mask, brute) << "grammar " << text << "\ntoken " << t << " '" << b << "' step " << step;
          if (in_mask) ok.push_back(int32_t(t));
        }
        if (ok.empty()) break;
        ASSERT_TRUE(c.accept(ok[rng() % ok.size()]).is_ok());
      }
    }
  }
}

}  // namespace
}  // namespace tern
