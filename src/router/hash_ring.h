// Consistent hashing with bounded load (Mirrokni, Thorup, Zadimoghaddam 2018) over the router's replicas:
// each replica owns `vnodes` points on a 64-bit ring; a key goes to the first replica clockwise from its
// hash whose load is under the bound ceil(factor * (total + 1) / n) + slack, so a hot prefix fills its home
// replica up to the bound and then spills to the next ones along the ring, never onto one replica alone.
// Adding or removing a replica moves only the keys of its arcs (the rest keep their home and its KV cache).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace tern::router {

// FNV-1a 64 with a final avalanche (splitmix64): stable across runs and machines, unlike std::hash.
uint64_t hash_bytes(std::string_view bytes);

// The same hash fed piece by piece: value() after each piece hashes everything so far (a chain of
// prefix hashes in one pass; value() after add(a) then add(b) equals hash_bytes(a + b)).
class PrefixHasher {
 public:
  void add(std::string_view bytes);
  uint64_t value() const;

 private:
  uint64_t h_ = 0xcbf29ce484222325ull;
};

class HashRing {
 public:
  HashRing() = default;
  // ids[i]: replica i's stable name (its URL), so a reload that keeps a replica keeps its points.
  explicit HashRing(const std::vector<std::string>& ids, int vnodes = 160);

  size_t replicas() const { return n_; }
  // Replica indices in ring order starting at `hash`'s position, each once (n entries).
  std::vector<int> walk(uint64_t hash) const;

 private:
  struct Point {
    uint64_t at;
    int replica;
  };
  std::vector<Point> points_;  // sorted by `at`
  size_t n_ = 0;
};

// The bound of consistent hashing with bounded load: a replica takes a request while its load is below
// ceil(factor * (total + 1) / n) + slack. Without slack the bound is 1 while fewer requests than
// replicas are in flight, so a replica with one request in flight would turn a conversation's next turn
// away from its cache; a batching replica serves a few more sequences at little cost, while a miss
// recomputes the whole history. The slack is added, not multiplied, so a hot key still spreads.
struct Balance {
  Balance(double f = 1.25, int s = 0) : factor(f), slack(s) {}  // implicit: a bare factor has no slack
  double factor;
  int slack;
};

// One replica as the choice sees it.
struct Candidate {
  bool eligible = false;  // healthy, in the set, not already tried for this request
  int64_t load = 0;       // requests the router has in flight on it
};

struct BoundedPick {
  int index = -1;      // -1: no eligible replica
  bool home = false;   // one of the key's first `choices` eligible replicas on the ring took it
};

// The load bound: ceil(factor * (sum of eligible loads + 1) / eligible count) + slack, 0 when none is eligible.
double load_bound(const std::vector<Candidate>& replicas, Balance balance);

// The first eligible replica along the ring from `hash` whose load is below the bound; factor >= 1
// (1.25: 25% above the mean). With `choices` 2: of the first two such replicas along the walk, the less
// loaded (power of two choices: keys spread far more evenly than by their hash alone, and each key
// still has two fixed candidates, so a restarted router sends it to one of the same two replicas).
BoundedPick pick_bounded(const HashRing& ring, uint64_t hash, const std::vector<Candidate>& replicas, Balance balance,
                         int choices = 1);

}  // namespace tern::router
