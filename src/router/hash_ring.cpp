// Consistent hashing with bounded load (hash_ring.h).
#include "router/hash_ring.h"

#include <algorithm>
#include <cmath>

namespace tern::router {

void PrefixHasher::add(std::string_view bytes) {
  for (unsigned char c : bytes) {
    h_ ^= c;
    h_ *= 0x100000001b3ull;
  }
}

uint64_t PrefixHasher::value() const {
  // splitmix64's finaliser: FNV alone clusters short, similar keys (replica URLs differing in one digit).
  uint64_t h = h_;
  h ^= h >> 30;
  h *= 0xbf58476d1ce4e5b9ull;
  h ^= h >> 27;
  h *= 0x94d049bb133111ebull;
  h ^= h >> 31;
  return h;
}

uint64_t hash_bytes(std::string_view bytes) {
  PrefixHasher h;
  h.add(bytes);
  return h.value();
}

HashRing::HashRing(const std::vector<std::string>& ids, int vnodes) : n_(ids.size()) {
  points_.reserve(ids.size() * size_t(std::max(1, vnodes)));
  for (size_t i = 0; i < ids.size(); ++i) {
    for (int v = 0; v < std::max(1, vnodes); ++v) {
      points_.push_back({hash_bytes(ids[i] + "#" + std::to_string(v)), int(i)});
    }
  }
  std::sort(points_.begin(), points_.end(), [](const Point& a, const Point& b) {
    return a.at != b.at ? a.at < b.at : a.replica < b.replica;
  });
}

std::vector<int> HashRing::walk(uint64_t hash) const {
  std::vector<int> order;
  if (points_.empty()) return order;
  order.reserve(n_);
  std::vector<char> seen(n_, 0);
  auto it = std::lower_bound(points_.begin(), points_.end(), hash, [](const Point& p, uint64_t h) { return p.at < h; });
  size_t at = size_t(it - points_.begin());
  for (size_t k = 0; k < points_.size() && order.size() < n_; ++k) {
    const Point& p = points_[(at + k) % points_.size()];
    if (!seen[size_t(p.replica)]) {
      seen[size_t(p.replica)] = 1;
      order.push_back(p.replica);
    }
  }
  return order;
}

double load_bound(const std::vector<Candidate>& replicas, Balance balance) {
  int64_t total = 0, eligible = 0;
  for (const Candidate& c : replicas) {
    if (!c.eligible) continue;
    total += std::max<int64_t>(0, c.load);
    eligible++;
  }
  if (eligible == 0) return 0;
  // With this request counted, the mean is (total + 1) / eligible; some replica is always below the bound.
  return std::ceil(std::max(1.0, balance.factor) * double(total + 1) / double(eligible)) + std::max(0, balance.slack);
}

BoundedPick pick_bounded(const HashRing& ring, uint64_t hash, const std::vector<Candidate>& replicas, Balance balance,
                         int choices) {
  BoundedPick pick;
  const double bound = load_bound(replicas, balance);
  if (bound <= 0) return pick;
  const int n = std::max(1, choices);
  int position = 0, seen = 0;  // eligible replicas along the walk; those of them under the bound
  for (int i : ring.walk(hash)) {
    if (size_t(i) >= replicas.size() || !replicas[size_t(i)].eligible) continue;
    if (double(replicas[size_t(i)].load) < bound) {
      // The first `choices` replicas under the bound along the walk: the least loaded (ties: the first).
      if (pick.index < 0 || replicas[size_t(i)].load < replicas[size_t(pick.index)].load) {
        pick.index = i;
        pick.home = position < n;  // one of the key's own candidates, not a spill past a full one
      }
      if (++seen >= n) return pick;
    }
    position++;
  }
  return pick;  // fewer candidates than choices (or none: unreachable while the ring covers every replica)
}

}  // namespace tern::router
