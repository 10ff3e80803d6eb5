// The shared short masks (lexical_signature.h) and the warm-up change no mask: over the schema corpus with a real
// byte-level BPE vocabulary (docs-llama-28m, Llama-3 layout), every node's mask equals the one walk from the node
// that computes it without sharing (byte-exact bits, the same pop points), while all schemas share one vocabulary
// (so classes made by one grammar serve the others) that the warm-up filled first; and at the steps of each
// schema's valid instance the matcher's mask equals brute force (each token's bytes checked one by one).
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <fstream>
#include <thread>

#include "constrain/compiled_grammar.h"
#include "constrain/token_constraint.h"
#include "constrain_test_util.h"
#include "test_support.h"
#include "text/tokenizer/tokenizer.h"

namespace tern {
namespace {


void expect_same(const constrain::NodeMask& a, const constrain::NodeMask& b, int64_t words, const std::string& where) {
  EXPECT_EQ(test::mask_bits(a, words), test::mask_bits(b, words)) << where;
  const std::vector<int32_t> pa = test::sorted_pop_points(a), pb = test::sorted_pop_points(b);
  EXPECT_EQ(std::adjacent_find(pa.begin(), pa.end()), pa.end()) << where;  // no pop point twice
  EXPECT_EQ(pa, pb) << where;
}

TEST(ConstrainMaskShared, CorpusMasksEqualUnsharedWalksAndBruteForce) {
  auto tok = Tokenizer::load(test::model_dir("docs-llama-28m"));
  ASSERT_TRUE(tok.is_ok()) << tok.status().message();
  auto vocab = TokenVocabulary::from_tokenizer(*tok);
  ASSERT_TRUE(vocab.is_ok()) << vocab.status().message();
  warm_up_masks(*vocab);
  std::ifstream in(std::string(TERN_SOURCE_DIR) + "/tests/data/schemas/corpus.jsonl");
  std::string line;
  int schemas = 0, nodes = 0, steps = 0;
  while (std::getline(in, line)) {
    if (line.empty()) continue;
    const auto e = nlohmann::ordered_json::parse(line);
    const std::string name = e["name"];
    auto g = compile_json_schema_text(e["schema"].dump(), *vocab);
    ASSERT_TRUE(g.is_ok()) << name << ": " << g.status().message();
    ++schemas;
    // The instance path first (the masks a request computes), brute force at every step.
    TokenConstraint c(*g);
    std::vector<uint32_t> mask(size_t(c.mask_words()));
    for (int32_t t : tok->encode(e["instance"].get<std::string>(), false)) {
      c.allowed(mask.data());
      for (int32_t id = 0; id < int32_t(vocab->size()); ++id) {
        const std::string& b = vocab->bytes(id);
        ASSERT_EQ(bool(mask[size_t(id) >> 5] >> (id & 31) & 1), !b.empty() && c.accepts_bytes(b))
            << name << " step " << steps << " token " << id << " '" << b << "'";
      }
      ++steps;
      ASSERT_TRUE(c.accept(t).is_ok()) << name;
    }
    // Then every node that consumes bytes (up to 300 per grammar: long strings repeat themselves).
    const auto& cg = (*g)->compiled();
    int checked = 0;
    for (int32_t n = 0; n < int32_t(cg.nodes.size()) && checked < 300; ++n) {
      if (!cg.has_bytes(n)) continue;
      expect_same(cg.node_mask(n), *constrain::reference_node_mask(cg, n), (vocab->size() + 31) / 32,
                  name + " node " + std::to_string(n));
      ++checked;
    }
    nodes += checked;
  }
  EXPECT_GE(schemas, 100);
  EXPECT_GT(nodes, 5000);
  EXPECT_GT(steps, 2000);
}

// Lexical rules of different grammars that behave alike on short strings share one short mask, yet every mask
// stays exact: bounded strings of many lengths, minLength, UTF-8 classes and tokens longer than kShortTokenBytes,
// all compiled against one vocabulary, checked by brute force on random walks.
TEST(ConstrainMaskShared, SharedClassesAcrossGrammarsStayExact) {
  std::vector<std::string> extra = {"ab", "\"", "\",", "x\"", "xx", "xxxxxxxxxxxxxxxxxxxx", "xxxxxxxxxxxxxxxxxxxxxxxx\"}",
                                    "\xC3", "\xA9", "\xC3\xA9", "\xA9x", "é\"}", "éééééééééé", "\\u00e9", "\\\"", "\\n",
                                    "yyyyyyyyyyyyyyy\"", "zzzzzzzzzzzzzzzzz\",", "aaaaaaaa", "é\""};
  const auto v = test::byte_vocab(extra);
  std::vector<std::string> schemas;
  for (int mn : {0, 1, 3, 15, 17})
    for (int mx : {-1, 3, 16, 17, 20, 40})
      if (mx < 0 || mx >= mn)
        schemas.push_back(mx < 0 ? "{\"type\":\"string\",\"minLength\":" + std::to_string(mn) + "}"
                                 : "{\"type\":\"string\",\"minLength\":" + std::to_string(mn) + ",\"maxLength\":" +
                                       std::to_string(mx) + "}");
  schemas.push_back(R"({"type":"array","items":{"type":"string","maxLength":30}})");
  schemas.push_back(R"({"type":"object","properties":{"a":{"type":"string","format":"email"},"b":{"type":"number"}}})");
  uint32_t seed = 11;
  for (const auto& s : schemas) {
    auto g = compile_json_schema_text(s, v);
    ASSERT_TRUE(g.is_ok()) << s << g.status().message();
    for (int walk = 0; walk < 6; ++walk) {
      TokenConstraint c(*g);
      std::vector<uint32_t> mask(size_t(c.mask_words()));
      for (int step = 0; step < 50 && !c.must_end(); ++step) {
        c.allowed(mask.data());
        std::vector<int32_t> ok;
        for (int64_t t = 0; t < v.size(); ++t) {
          const std::string& b = v.bytes(int32_t(t));
          const bool in_mask = mask[size_t(t) >> 5] >> (t & 31) & 1;
          ASSERT_EQ(in_mask, !b.empty() && c.accepts_bytes(b)) << s << " token " << t << " step " << step;
          if (in_mask) ok.push_back(int32_t(t));
        }
        if (ok.empty()) break;
        seed = seed * 1103515245u + 12345u;
        // Prefer multi-byte tokens so walks reach the far positions of long strings.
        int32_t pick = ok[(seed >> 8) % ok.size()];
        for (int32_t id : ok)
          if (id >= 256 && (seed >> 20) % 3 == 0) pick = id;
        ASSERT_TRUE(c.accept(pick).is_ok());
      }
    }
  }
}

TEST(ConstrainMaskShared, GrammarCacheWarmUpRunsInTheBackgroundAndStops) {
  const auto v = test::byte_vocab({"ab", "\"}"});
  {
    GrammarCache cache(v);
    cache.start_warm_up();
    cache.start_warm_up();  // idempotent
    auto g = cache.json_schema_text(R"({"type":"string","maxLength":5})");  // usable while it runs
    ASSERT_TRUE(g.is_ok());
    TokenConstraint c(*g);
    EXPECT_TRUE(test::feed(c, "\"abc\""));
    EXPECT_TRUE(c.can_end());
  }  // the destructor stops and joins the warm-up
  GrammarCache done(v);
  done.start_warm_up();
  for (int i = 0; i < 6000 && !done.warm_up_done(); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  EXPECT_TRUE(done.warm_up_done());
}

}  // namespace
}  // namespace tern
