// The router's replica choice: consistent hashing with bounded load, prefix-affinity keys, least load,
// round robin, and replica URLs / files (src/router/).
#include <gtest/gtest.h>

#include <cmath>
#include <map>
#include <set>

#include "router/hash_ring.h"
#include "router/replica_set.h"
#include "router/routing.h"

namespace tern::router {
namespace {

std::vector<std::string> urls(int n) {
  std::vector<std::string> out;
  for (int i = 0; i < n; ++i) out.push_back("http://127.0.0.1:" + std::to_string(9000 + i));
  return out;
}

TEST(RouterHashRing, WalkVisitsEveryReplicaOnceAndIsStable) {
  const HashRing ring(urls(5));
  for (uint64_t h : {0ull, 1ull, 12345678901234ull, ~0ull}) {
    const std::vector<int> w = ring.walk(h);
    ASSERT_EQ(w.size(), 5u);
    EXPECT_EQ(std::set<int>(w.begin(), w.end()).size(), 5u);
    EXPECT_EQ(w, HashRing(urls(5)).walk(h));  // the same ring from the same names
  }
  EXPECT_TRUE(HashRing(std::vector<std::string>{}).walk(7).empty());
}

TEST(RouterHashRing, KeysSpreadOverReplicas) {
  const HashRing ring(urls(3));
  std::map<int, int> count;
  for (int k = 0; k < 3000; ++k) count[ring.walk(hash_bytes("conversation " + std::to_string(k)))[0]]++;
  ASSERT_EQ(count.size(), 3u);
  for (const auto& [r, n] : count) EXPECT_GT(n, 600) << "replica " << r;  // 1000 each on average
}

TEST(RouterHashRing, RemovingAReplicaMovesOnlyItsKeys) {
  std::vector<std::string> four = urls(4), three = urls(3);
  const HashRing before(four), after(three);
  int moved = 0, stayed = 0;
  for (int k = 0; k < 2000; ++k) {
    const uint64_t h = hash_bytes("k" + std::to_string(k));
    const int home = before.walk(h)[0];
    if (home == 3) continue;  // the removed replica's keys go elsewhere by necessity
    (after.walk(h)[0] == home ? stayed : moved)++;
  }
  EXPECT_EQ(moved, 0);
  EXPECT_GT(stayed, 1000);
}

TEST(RouterBoundedLoad, HomeTakesAKeyWhileUnderTheBound) {
  const HashRing ring(urls(3));
  const uint64_t h = hash_bytes("hot prefix");
  const int home = ring.walk(h)[0];
  std::vector<Candidate> c(3, Candidate{true, 0});
  BoundedPick p = pick_bounded(ring, h, c, 1.25);
  EXPECT_EQ(p.index, home);
  EXPECT_TRUE(p.home);
}

TEST(RouterBoundedLoad, AHotKeyCannotOverloadItsHome) {
  // Every request carries the same prefix: the home fills to the bound, the rest spill along the ring.
  const HashRing ring(urls(3));
  const uint64_t h = hash_bytes("the same system prompt");
  std::vector<Candidate> c(3, Candidate{true, 0});
  for (int i = 0; i < 300; ++i) {
    const BoundedPick p = pick_bounded(ring, h, c, 1.25);
    ASSERT_GE(p.index, 0);
    c[size_t(p.index)].load++;
  }
  int64_t max_load = 0;
  for (const Candidate& x : c) max_load = std::max(max_load, x.load);
  EXPECT_LE(max_load, int64_t(std::ceil(1.25 * 300 / 3.0)));
  for (const Candidate& x : c) EXPECT_GT(x.load, 0);
}

TEST(RouterBoundedLoad, SkipsIneligibleReplicasAndReportsNoneWhenAllAreOut) {
  const HashRing ring(urls(3));
  const uint64_t h = hash_bytes("x");
  const int home = ring.walk(h)[0];
  std::vector<Candidate> c(3, Candidate{true, 0});
  c[size_t(home)].eligible = false;
  const BoundedPick p = pick_bounded(ring, h, c, 1.25);
  EXPECT_NE(p.index, home);
  EXPECT_GE(p.index, 0);
  EXPECT_TRUE(p.home);  // the first eligible replica on the ring is the key's home while the other is out
  for (auto& x : c) x.eligible = false;
  EXPECT_EQ(pick_bounded(ring, h, c, 1.25).index, -1);
}

TEST(RouterAffinityKey, ChatTurnsOfOneConversationShareTheKey) {
  const std::string turn1 =
      R"({"model":"m","messages":[{"role":"system","content":"be brief"},{"role":"user","content":"hi, I am Ann"}]})";
  const std::string turn3 = R"({"model":"m","stream":true,"messages":[{"role":"system","content":"be brief"},
    {"role":"user","content":"hi, I am Ann"},{"role":"assistant","content":"hello"},{"role":"user","content":"more"},
    {"role":"assistant","content":"sure"},{"role":"user","content":"and more"}]})";
  const std::string other =
      R"({"model":"m","messages":[{"role":"system","content":"be brief"},{"role":"user","content":"hi, I am Bob"}]})";
  ASSERT_TRUE(affinity_key(turn1, 256));
  EXPECT_EQ(affinity_key(turn1, 256), affinity_key(turn3, 256));
  EXPECT_NE(affinity_key(turn1, 256), affinity_key(other, 256));
}

TEST(RouterAffinityKey, PromptPrefixAndNoKey) {
  const std::string a = R"({"model":"m","prompt":"0123456789 the rest differs A"})";
  const std::string b = R"({"model":"m","prompt":"0123456789 the rest differs B"})";
  EXPECT_EQ(affinity_key(a, 10), affinity_key(b, 10));
  EXPECT_NE(affinity_key(a, 100), affinity_key(b, 100));
  EXPECT_TRUE(affinity_key(R"({"prompt":[1,2,3]})", 100));
  EXPECT_FALSE(affinity_key("not json", 100));
  EXPECT_FALSE(affinity_key(R"({"model":"m"})", 100));
  EXPECT_FALSE(affinity_key(R"([1,2])", 100));
  EXPECT_FALSE(affinity_key(R"({"messages":[1]})", 100));
}

TEST(RouterChoose, LeastLoadTakesTheLeastQueuedEligibleReplica) {
  const HashRing ring(urls(3));
  std::vector<ReplicaState> s = {{true, 2, 0}, {true, 0, 5}, {true, 1, 1}};
  EXPECT_EQ(choose(Policy::kLeastLoad, ring, std::nullopt, s, 1.25, 0).index, 2);
  s[2].eligible = false;
  EXPECT_EQ(choose(Policy::kLeastLoad, ring, std::nullopt, s, 1.25, 0).index, 0);
  // Affinity without a key is least load too.
  EXPECT_EQ(choose(Policy::kAffinity, ring, std::nullopt, s, 1.25, 0).index, 0);
  // Ties: the rotating start spreads idle replicas' first requests.
  std::vector<ReplicaState> idle(3, ReplicaState{true, 0, 0});
  std::set<int> picked;
  for (uint64_t rr = 0; rr < 3; ++rr) picked.insert(choose(Policy::kLeastLoad, ring, std::nullopt, idle, 1.25, rr).index);
  EXPECT_EQ(picked.size(), 3u);
}

TEST(RouterChoose, RoundRobinSkipsIneligibleAndAffinityUsesTheKey) {
  const HashRing ring(urls(3));
  std::vector<ReplicaState> s(3, ReplicaState{true, 0, 0});
  s[1].eligible = false;
  EXPECT_EQ(choose(Policy::kRoundRobin, ring, std::nullopt, s, 1.25, 1).index, 2);
  s[1].eligible = true;
  const uint64_t h = hash_bytes("k");
  const Choice c = choose(Policy::kAffinity, ring, h, s, 1.25, 0);
  EXPECT_EQ(c.index, ring.walk(h)[0]);
  EXPECT_TRUE(c.affinity);
  EXPECT_TRUE(c.home);
  for (auto& x : s) x.eligible = false;
  EXPECT_EQ(choose(Policy::kAffinity, ring, h, s, 1.25, 0).index, -1);
  EXPECT_EQ(choose(Policy::kLeastLoad, ring, h, s, 1.25, 0).index, -1);
}

TEST(RouterReplicaUrl, ParsesAndRejectsCleanly) {
  auto a = parse_replica_url("http://127.0.0.1:8081/");
  ASSERT_TRUE(a.is_ok()) << a.status().message();
  EXPECT_EQ(a->url, "http://127.0.0.1:8081");
  EXPECT_EQ(parse_replica_url("localhost:9")->url, "http://localhost:9");
  EXPECT_EQ(parse_replica_url("http://[::1]:80")->url, "http://[::1]:80");
  EXPECT_EQ(parse_replica_url("http://host")->port, "80");
  for (const char* bad : {"https://x:1", "http://x:1/v1", "http://:80", "x:0", "x:65536", "x:abc", "::1:80", "[::1"}) {
    auto r = parse_replica_url(bad);
    EXPECT_FALSE(r.is_ok()) << bad;
    if (!r.is_ok()) EXPECT_NE(r.status().message().find(bad), std::string::npos) << r.status().message();
  }
}

TEST(RouterReplicaUrl, FileListsWithCommentsAndErrorsNamingTheLine) {
  auto list = parse_replica_list("# replicas\nhttp://a:1\n\n  b:2  # second\n", "f.txt");
  ASSERT_TRUE(list.is_ok()) << list.status().message();
  ASSERT_EQ(list->size(), 2u);
  EXPECT_EQ((*list)[1].url, "http://b:2");
  auto bad = parse_replica_list("http://a:1\nhttps://b:2\n", "f.txt");
  ASSERT_FALSE(bad.is_ok());
  EXPECT_NE(bad.status().message().find("f.txt:2"), std::string::npos) << bad.status().message();
  auto dup = parse_replica_list("a:1\nhttp://a:1/\n", "f.txt");
  ASSERT_FALSE(dup.is_ok());
  EXPECT_NE(dup.status().message().find("twice"), std::string::npos);
  EXPECT_FALSE(load_replica_file("/nonexistent/replicas.txt").is_ok());
}

TEST(RouterReplicaSet, AReloadKeepsTheStateOfKeptReplicas) {
  ReplicaSet set;
  set.assign({parse_replica_url("a:1").value(), parse_replica_url("b:2").value()});
  set.all()[1]->healthy = true;
  set.all()[1]->requests = 7;
  set.assign({parse_replica_url("b:2").value(), parse_replica_url("c:3").value()});
  ASSERT_EQ(set.all().size(), 2u);
  EXPECT_EQ(set.all()[0]->addr.url, "http://b:2");
  EXPECT_TRUE(set.all()[0]->healthy);
  EXPECT_EQ(set.all()[0]->requests, 7u);
  EXPECT_FALSE(set.all()[1]->healthy);
  EXPECT_EQ(set.ring().replicas(), 2u);
}

}  // namespace
}  // namespace tern::router
