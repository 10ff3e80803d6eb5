// Whole-subtree steps of the lexical walk (node_mask.cpp): a trie node whose bytes below all stay in a character
// class run (a loop, or a counted chain of states with equal byte groups) has its tokens added as one range without
// visiting its nodes. The trie facts that rely on (each node's token range in byte order and the set of bytes below
// it) are checked against their definitions, and every node mask of grammars built from such classes (loops, final
// loops, counted runs, two-state cycles, UTF-8, JSON string patterns and bounded strings) must equal the plain walk
// (reference_node_mask: no whole-subtree steps, no shared masks) bit for bit with the same pop points, on a real
// byte-level BPE vocabulary and on a byte vocabulary with long tokens.
#include <gtest/gtest.h>

#include <algorithm>
#include <string>
#include <vector>

#include "constrain/compiled_grammar.h"
#include "constrain/token_constraint.h"
#include "constrain/vocab_impl.h"
#include "constrain_test_util.h"
#include "test_support.h"
#include "text/tokenizer/tokenizer.h"

namespace tern {
namespace {


// Every trie node: sorted[tok_begin, tok_end) are exactly the tokens spelled with the node's prefix, and
// byte_sets[below] is exactly the set of bytes that follow the prefix in some token.
void check_trie(const constrain::TokenTrie& t, const std::vector<std::string>& spell, const std::string& what) {
  struct Item {
    int32_t node;
    std::string prefix;
  };
  std::vector<Item> todo = {{0, ""}};
  size_t checked = 0;
  while (!todo.empty()) {
    const Item it = todo.back();
    todo.pop_back();
    const constrain::TrieNode& n = t.nodes[size_t(it.node)];
    std::vector<int32_t> want, got(t.sorted.begin() + t.tok_begin[size_t(it.node)], t.sorted.begin() + t.tok_end[size_t(it.node)]);
    constrain::ByteSet below;
    for (size_t id = 0; id < spell.size(); ++id) {
      const std::string& s = spell[id];
      if (s.empty() || s.compare(0, it.prefix.size(), it.prefix) != 0 || s.size() < it.prefix.size()) continue;
      want.push_back(int32_t(id));
      for (size_t k = it.prefix.size(); k < s.size(); ++k) below.w[uint8_t(s[k]) >> 6] |= uint64_t(1) << (uint8_t(s[k]) & 63);
    }
    std::sort(want.begin(), want.end());
    std::sort(got.begin(), got.end());
    ASSERT_EQ(got, want) << what << " prefix '" << it.prefix << "'";
    ASSERT_TRUE(t.byte_sets[n.below] == below) << what << " prefix '" << it.prefix << "'";
    ++checked;
    for (int32_t c = n.first_child; c < n.first_child + n.n_children; ++c)
      todo.push_back({c, it.prefix + char(t.nodes[size_t(c)].byte)});
  }
  EXPECT_EQ(checked, t.nodes.size()) << what;
}

TEST(ConstrainWholeSubtrees, TrieRangesAndBytesBelowMatchTheirDefinitions) {
  std::vector<std::string> extra = {"ab", "abc", "abd", "abcdefghijklmnopqrstu", "abcdefghijklmnopqrstuv", "b\"", "é",
                                    "\xC3", "zzzzzzzzzzzzzzzzzzzz\"", "ab"};  // "ab" twice: equal spellings
  const auto v = test::byte_vocab(extra);
  const auto& impl = v.impl();
  check_trie(impl.trie, impl.bytes, "trie");
  std::vector<std::string> long_only(impl.bytes.size());
  for (size_t id = 0; id < impl.bytes.size(); ++id)
    if (impl.bytes[id].size() > size_t(constrain::kShortTokenBytes)) long_only[id] = impl.bytes[id];
  check_trie(impl.long_trie, long_only, "long trie");
}

// Character classes of every shape the whole-subtree step meets.
const std::vector<std::string> kGbnf = {
    R"(root ::= [a-z]+)",                       // a loop through a final state: no whole-subtree step may apply
    R"(root ::= [a-z]+ ".")",                   // a loop, then a final byte
    R"(root ::= [a-z]{3,20} "!")",              // a counted chain with an optional tail
    R"(root ::= [a-z]{12} | [0-9]{2})",         // chains that end final
    R"(root ::= ([a-z] [0-9])+ ";")",           // a two-state cycle
    R"(root ::= ([a-z] [a-z])+ ";")",           // a two-state cycle with equal groups
    R"(root ::= [^"\\\x00-\x1f]* "\"")",        // a string body: UTF-8 lead bytes leave the group
    R"(root ::= "x" [A-Za-z0-9_.-]+ "/" [A-Za-z0-9_.-]+ "\"")",
    R"(root ::= [ -~]{0,30} "\n")",             // printable ASCII, bounded
};
const std::vector<std::string> kSchemas = {
    R"({"type":"string","pattern":"^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$"})",
    R"({"type":"string","pattern":"^pi_[A-Za-z0-9]{12}$"})",
    R"({"type":"string","pattern":"^[a-z][a-z0-9_]{2,15}$"})",
    R"({"type":"string","pattern":"^[a-z]{3}$"})",
    R"({"type":"string","maxLength":20})",
    R"({"type":"string","minLength":3,"maxLength":40})",
    R"({"type":"string"})",
    R"({"type":"integer"})",
    R"({"type":"number"})",
};

void expect_masks_equal_plain_walks(const TokenVocabulary& v, const std::string& what) {
  const int64_t words = (v.size() + 31) / 32;
  int nodes = 0;
  auto check = [&](const std::shared_ptr<const Grammar>& g, const std::string& src) {
    const auto& cg = g->compiled();
    for (int32_t n = 0; n < int32_t(cg.nodes.size()); ++n) {
      if (!cg.has_bytes(n)) continue;
      const auto& m = cg.node_mask(n);
      const auto ref = constrain::reference_node_mask(cg, n);
      EXPECT_EQ(test::mask_bits(m, words), test::mask_bits(*ref, words)) << what << ": " << src << " node " << n;
      EXPECT_EQ(test::sorted_pop_points(m), test::sorted_pop_points(*ref)) << what << ": " << src << " node " << n;
      ++nodes;
    }
  };
  for (const auto& text : kGbnf) {
    auto g = compile_gbnf(text, v);
    ASSERT_TRUE(g.is_ok()) << text << ": " << g.status().message();
    check(*g, text);
  }
  for (const auto& schema : kSchemas) {
    auto g = compile_json_schema_text(schema, v);
    ASSERT_TRUE(g.is_ok()) << schema << ": " << g.status().message();
    check(*g, schema);
  }
  EXPECT_GT(nodes, 200) << what;
}

TEST(ConstrainWholeSubtrees, MasksEqualPlainWalksOnARealVocabulary) {
  auto tok = Tokenizer::load(test::model_dir("docs-llama-28m"));
  ASSERT_TRUE(tok.is_ok()) << tok.status().message();
  auto vocab = TokenVocabulary::from_tokenizer(*tok);
  ASSERT_TRUE(vocab.is_ok()) << vocab.status().message();
  expect_masks_equal_plain_walks(*vocab, "docs-llama-28m");
}

TEST(ConstrainWholeSubtrees, MasksEqualPlainWalksWithLongTokens) {
  // Tokens longer than kShortTokenBytes (the long-token trie's walk), runs that end inside a token, and tokens
  // that leave a class mid-way.
  std::vector<std::string> extra = {"abcdefghijklmnopqrstuvwxyz", "abcdefghijkl", "abcdefghijklm", "abc",
                                    "a1b2c3d4e5f6g7h8i9", "a1b2c3", "a1;", "ab;", "abcd.", "octo/hello.world",
                                    "octo/", "hello.world\"", "pi_3MtwBwLkdIwH", "pi_3Mtw", "3MtwBwLkdIwH\"",
                                    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa!",
                                    "é", "éé", "\xC3", "\"", "\",", "1234567890", "12", "x!", "\n"};
  expect_masks_equal_plain_walks(test::byte_vocab(extra), "byte vocabulary");
}

}  // namespace
}  // namespace tern
