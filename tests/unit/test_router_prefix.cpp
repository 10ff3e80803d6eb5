// Prefix affinity's memory (src/router/prefix_table.h) and its use by the choice (routing.h): prefix
// chains of chat turns and prompts, the deepest holder first, conversations that open alike parting
// ways, a spilled conversation staying where it went, the load bound over holders, the table's bound.
#include <gtest/gtest.h>

#include <cstdio>
#include <map>

#include "router/prefix_table.h"
#include "router/routing.h"

namespace tern::router {
namespace {

std::string chat(const std::vector<std::pair<std::string, std::string>>& messages) {
  std::string body = R"({"model":"m","messages":[)";
  for (size_t i = 0; i < messages.size(); ++i) {
    body += (i ? "," : "") + std::string(R"({"role":")") + messages[i].first + R"(","content":")" + messages[i].second + "\"}";
  }
  return body + "]}";
}

std::vector<std::string> urls(int n) {
  std::vector<std::string> out;
  for (int i = 0; i < n; ++i) out.push_back("http://127.0.0.1:" + std::to_string(9100 + i));
  return out;
}

// A hostile body nested 100,000 deep gets no key (and does not overflow the stack hashing its content).
TEST(RouterPrefixChain, DeepBodyHasNoKey) {
  const std::string deep = std::string(100000, '[') + std::string(100000, ']');
  EXPECT_FALSE(affinity_keys(R"({"messages":[{"role":"user","content":)" + deep + "}]}", 256));
  EXPECT_FALSE(affinity_key(R"({"prompt":)" + deep + "}", 256));
}

TEST(RouterPrefixChain, OneHashPerMessageAndALaterTurnExtendsTheEarlierOne) {
  const auto t1 = affinity_keys(chat({{"system", "be brief"}, {"user", "hi"}}), 256);
  const auto t2 = affinity_keys(chat({{"system", "be brief"}, {"user", "hi"}, {"assistant", "hello"}, {"user", "more"}}), 256);
  ASSERT_TRUE(t1 && t2);
  ASSERT_EQ(t1->chain.size(), 1u);  // from the first user message on: the system prompt alone is no prefix
  ASSERT_EQ(t2->chain.size(), 3u);
  EXPECT_EQ(t1->chain[0], t2->chain[0]);
  EXPECT_NE(t2->chain[1], t2->chain[2]);
  EXPECT_EQ(t1->home, t2->home);  // the ring key: up to the first user message
  EXPECT_EQ(t1->home, hash_bytes(*affinity_key(chat({{"system", "be brief"}, {"user", "hi"}}), 256)));
  // A different first answer parts the chains from there on.
  const auto other = affinity_keys(chat({{"system", "be brief"}, {"user", "hi"}, {"assistant", "hey"}, {"user", "more"}}), 256);
  EXPECT_EQ(other->chain[0], t2->chain[0]);
  EXPECT_NE(other->chain[1], t2->chain[1]);
  EXPECT_NE(other->chain[2], t2->chain[2]);
}

TEST(RouterPrefixChoose, ASharedSystemPromptDoesNotPullNewConversationsTogether) {
  // Every conversation opens with the same system prompt and its own question: each first turn is new
  // (no holder), so they spread by two choices instead of following the system prompt to one replica.
  PrefixTable table;
  const std::vector<std::string> ids = urls(3);
  const HashRing ring(ids);
  std::vector<ReplicaState> s(3, ReplicaState{true, 0, 0});
  for (int c = 0; c < 12; ++c) {
    const auto k = affinity_keys(chat({{"system", "you are helpful"}, {"user", "question " + std::to_string(c)}}), 256);
    EXPECT_TRUE(table.holders(k->chain).empty()) << c;
    const Choice ch = choose(Policy::kAffinity, ring, k->home, s, Balance(1.25, 2), 0);
    table.record(k->chain, ids[size_t(ch.index)]);
    s[size_t(ch.index)].in_flight++;
  }
  for (const auto& x : s) {
    EXPECT_GE(x.in_flight, 3);  // 4 each, give or take one
    EXPECT_LE(x.in_flight, 5);
  }
}

TEST(RouterPrefixChain, PromptsChainEveryChunkAndKeepTheRingKey) {
  const std::string a(kPromptChunk * 2 + 10, 'a');
  const auto k1 = affinity_keys(R"({"prompt":")" + a + "\"}", 100);
  const auto k2 = affinity_keys(R"({"prompt":")" + a + "bbbb\"}", 100);
  ASSERT_TRUE(k1 && k2);
  ASSERT_EQ(k1->chain.size(), 3u);  // two whole chunks and the whole prompt
  EXPECT_EQ(k1->chain[0], k2->chain[0]);
  EXPECT_EQ(k1->chain[1], k2->chain[1]);
  EXPECT_NE(k1->chain[2], k2->chain[2]);
  EXPECT_EQ(k1->home, k2->home);  // the first 100 bytes
  EXPECT_FALSE(affinity_keys("not json", 100));
  const auto huge = affinity_keys(R"({"prompt":")" + std::string(kPromptChunk * (kMaxChain + 10), 'x') + "\"}", 100);
  ASSERT_TRUE(huge);
  EXPECT_LE(huge->chain.size(), kMaxChain);
}

TEST(RouterPrefixTable, HoldersDeepestFirstEachOnce) {
  PrefixTable t;
  t.record({1, 2, 3}, "A");
  t.record({1, 2, 7}, "B");  // B got prefixes 1 and 2 later than A
  EXPECT_EQ(t.holders({1, 2, 3, 4}), (std::vector<std::string>{"A", "B"}));
  EXPECT_EQ(t.holders({1, 2, 7, 8}), (std::vector<std::string>{"B"}));
  EXPECT_TRUE(t.holders({9}).empty());
}

TEST(RouterPrefixTable, BoundedDropsTheLeastRecentlySent) {
  PrefixTable t(4);
  t.record({1, 2}, "A");
  t.record({3, 4}, "B");
  t.record({1}, "A");     // 1 is recent again
  t.record({5, 6}, "C");  // 2 and 3 go
  EXPECT_EQ(t.size(), 4u);
  EXPECT_EQ(t.holders({1}), (std::vector<std::string>{"A"}));
  EXPECT_TRUE(t.holders({2}).empty());
  EXPECT_TRUE(t.holders({3}).empty());
  EXPECT_EQ(t.holders({5, 6}), (std::vector<std::string>{"C"}));
}

TEST(RouterPrefixChoose, AHolderUnderTheBoundTakesItElseTheRing) {
  const HashRing ring(urls(3));
  std::vector<ReplicaState> s(3, ReplicaState{true, 0, 0});
  const uint64_t h = hash_bytes("k");
  const int home = ring.walk(h)[0];
  const int holder = (home + 1) % 3;
  Choice c = choose(Policy::kAffinity, ring, h, s, 1.25, 0, {holder});
  EXPECT_EQ(c.index, holder);
  EXPECT_TRUE(c.home && c.prefix);
  // The holder is full (the bound is ceil(1.25 * 5 / 3) = 3): the ring decides, and it is a spill.
  s[size_t(holder)].in_flight = 4;
  c = choose(Policy::kAffinity, ring, h, s, 1.25, 0, {holder});
  EXPECT_NE(c.index, holder);
  EXPECT_FALSE(c.home);
  EXPECT_FALSE(c.prefix);
  // A holder that is down is no holder: the ring's home is a hit.
  s[size_t(holder)] = ReplicaState{false, 0, 0};
  c = choose(Policy::kAffinity, ring, h, s, 1.25, 0, {holder});
  EXPECT_EQ(c.index, home);
  EXPECT_TRUE(c.home);
}

TEST(RouterPrefixChoose, TheSlackKeepsAffinityWhileFewRequestsAreInFlight) {
  const HashRing ring(urls(3));
  const uint64_t h = hash_bytes("a conversation");
  const int holder = ring.walk(h)[0];  // got the conversation's earlier turns
  std::vector<ReplicaState> s(3, ReplicaState{true, 0, 0});
  s[size_t(holder)].in_flight = 1;  // another request is still running there
  // ceil(1.25 * 2 / 3) = 1: without slack a single request in flight turns it away from its cache.
  EXPECT_NE(choose(Policy::kAffinity, ring, h, s, Balance(1.25, 0), 0, {holder}).index, holder);
  EXPECT_EQ(choose(Policy::kAffinity, ring, h, s, Balance(1.25, 2), 0, {holder}).index, holder);
  // The slack is additive: a hot holder is still left once it is 2 past the proportional bound
  // (5 in flight, all on it: ceil(1.25 * 6 / 3) + 2 = 5).
  s[size_t(holder)].in_flight = 4;
  EXPECT_EQ(choose(Policy::kAffinity, ring, h, s, Balance(1.25, 2), 0, {holder}).index, holder);
  s[size_t(holder)].in_flight = 5;
  EXPECT_NE(choose(Policy::kAffinity, ring, h, s, Balance(1.25, 2), 0, {holder}).index, holder);
}

TEST(RouterPrefixChoose, NewConversationsSpreadByTwoChoices) {
  // 30 conversations whose first turns are all in flight at once: by hash alone 3 replicas get an uneven
  // share; the less loaded of each key's first two replicas on the ring evens them out.
  const HashRing ring(urls(3));
  std::vector<ReplicaState> s(3, ReplicaState{true, 0, 0});
  std::vector<int> by_hash(3, 0);
  for (int c = 0; c < 30; ++c) {
    const uint64_t h = hash_bytes("conversation " + std::to_string(c));
    by_hash[size_t(ring.walk(h)[0])]++;
    const Choice ch = choose(Policy::kAffinity, ring, h, s, Balance(1.25, 2), 0);
    ASSERT_GE(ch.index, 0);
    EXPECT_TRUE(ch.home);  // one of its two candidates: not a spill
    EXPECT_TRUE(ch.index == ring.walk(h)[0] || ch.index == ring.walk(h)[1]);
    s[size_t(ch.index)].in_flight++;
  }
  for (const auto& x : s) EXPECT_GE(x.in_flight, 9);
  for (const auto& x : s) EXPECT_LE(x.in_flight, 11);
  std::printf("by hash alone: %d / %d / %d\n", by_hash[0], by_hash[1], by_hash[2]);
}

// Many conversations that open with the same system prompt and first question: by the ring key alone they
// are one hot key whose turns land wherever the load bound lets them; with the table each conversation's
// later turns go where its own history went.
TEST(RouterPrefixChoose, ConversationsThatOpenAlikeStayWhereTheirHistoryIs) {
  constexpr int kConversations = 24, kTurns = 5;
  const std::vector<std::string> ids = urls(3);
  const HashRing ring(ids);
  PrefixTable table;
  std::vector<ReplicaState> s(3, ReplicaState{true, 0, 0});
  std::vector<std::vector<std::pair<std::string, std::string>>> conv(kConversations);
  std::vector<int> last(kConversations, -1);
  int stayed = 0, moved = 0;
  const Balance balance(1.25, 2);
  for (int t = 0; t < kTurns; ++t) {
    for (int c = 0; c < kConversations; ++c) {  // a closed loop: each conversation has one turn in flight
      if (t == 0) conv[c] = {{"system", "the same long instructions"}, {"user", "the same first question"}};
      else conv[c].push_back({"user", "turn " + std::to_string(t)});
      if (last[c] >= 0) s[size_t(last[c])].in_flight--;  // its previous turn ended
      const auto k = affinity_keys(chat(conv[c]), 256);
      std::vector<int> holders;
      for (const std::string& u : table.holders(k->chain)) holders.push_back(int(std::find(ids.begin(), ids.end(), u) - ids.begin()));
      const Choice ch = choose(Policy::kAffinity, ring, k->home, s, balance, 0, holders);
      ASSERT_GE(ch.index, 0);
      table.record(k->chain, ids[size_t(ch.index)]);
      s[size_t(ch.index)].in_flight++;
      if (t >= 2) (ch.index == last[c] ? stayed : moved)++;  // from turn 2 on the history tells them apart
      last[c] = ch.index;
      conv[c].push_back({"assistant", "answer " + std::to_string(c) + "." + std::to_string(t)});
    }
    int64_t most = 0;
    for (const auto& x : s) most = std::max(most, x.in_flight);
    EXPECT_LE(most, 12) << "turn " << t;  // ceil(1.25 * 24 / 3) + 2: the hot opening still spreads
  }
  EXPECT_EQ(moved, 0);
  EXPECT_EQ(stayed, kConversations * (kTurns - 2));
}

}  // namespace
}  // namespace tern::router
