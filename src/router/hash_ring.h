// Consistent hashing with bounded load (Mirrokni, Thorup, Zadimoghaddam 2018) over the router's replicas:
// each replica owns `vnodes` points on a 64-bit ring; a key goes to the first replica clockwise from its
// hash whose load is under the bound ceil(balance * (total + 1) / n), so a hot prefix fills its home
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

// One replica as the choice sees it.
struct Candidate {
  bool eligible = false;  // healthy, in the set, not already tried for this request
  int64_t load = 0;       // requests the router has in flight on it
};

struct BoundedPick {
  int index = -1;      // -1: no eligible replica
  bool home = false;   // the key's first eligible replica on the ring took it
};

// The first eligible replica along the ring from `hash` whose load is below
// ceil(balance * (sum of eligible loads + 1) / eligible count); balance >= 1 (1.25: 25% above the mean).
BoundedPick pick_bounded(const HashRing& ring, uint64_t hash, const std::vector<Candidate>& replicas, double balance);

}  // namespace tern::router
