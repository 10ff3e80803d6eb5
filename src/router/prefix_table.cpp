// Where each prompt prefix was sent (prefix_table.h).
#include "router/prefix_table.h"

#include <algorithm>

namespace tern::router {

PrefixTable::PrefixTable(size_t capacity) : capacity_(std::max<size_t>(1, capacity)) {}

uint32_t PrefixTable::intern(const std::string& id) {
  auto it = id_of_.find(id);
  if (it != id_of_.end()) return it->second;
  ids_.push_back(id);
  return id_of_[id] = uint32_t(ids_.size() - 1);
}

std::vector<std::string> PrefixTable::holders(const std::vector<uint64_t>& chain) const {
  std::vector<std::string> out;
  std::vector<uint32_t> seen;
  for (size_t i = chain.size(); i-- > 0;) {
    auto it = map_.find(chain[i]);
    if (it == map_.end() || std::find(seen.begin(), seen.end(), it->second.id) != seen.end()) continue;
    seen.push_back(it->second.id);
    out.push_back(ids_[it->second.id]);
  }
  return out;
}

void PrefixTable::record(const std::vector<uint64_t>& chain, const std::string& id) {
  const uint32_t who = intern(id);
  for (uint64_t h : chain) {
    auto it = map_.find(h);
    if (it != map_.end()) {
      it->second.id = who;
      lru_.splice(lru_.begin(), lru_, it->second.at);
      continue;
    }
    lru_.push_front(h);
    map_.emplace(h, Entry{who, lru_.begin()});
    if (map_.size() > capacity_) {
      map_.erase(lru_.back());
      lru_.pop_back();
    }
  }
}

}  // namespace tern::router
