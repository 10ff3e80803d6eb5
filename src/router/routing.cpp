// The router's choice of a replica (routing.h).
#include "router/routing.h"

#include <algorithm>

#include <nlohmann/json.hpp>

namespace tern::router {

using json = nlohmann::json;

Result<Policy> parse_policy(std::string_view name) {
  if (name == "affinity") return Policy::kAffinity;
  if (name == "least-load") return Policy::kLeastLoad;
  if (name == "round-robin") return Policy::kRoundRobin;
  return Status::error("unknown routing policy '" + std::string(name) + "' (affinity, least-load, round-robin)");
}

const char* policy_name(Policy p) {
  switch (p) {
    case Policy::kAffinity: return "affinity";
    case Policy::kLeastLoad: return "least-load";
    case Policy::kRoundRobin: return "round-robin";
  }
  return "?";
}

std::optional<std::string> affinity_key(std::string_view body, size_t prompt_bytes) {
  const json b = json::parse(body, nullptr, false);
  if (b.is_discarded() || !b.is_object()) return std::nullopt;
  auto it = b.find("messages");
  if (it != b.end() && it->is_array() && !it->empty()) {
    std::string key = "chat";
    for (const json& m : *it) {
      if (!m.is_object()) return std::nullopt;
      const auto role = m.find("role");
      const auto content = m.find("content");
      const std::string r = role != m.end() && role->is_string() ? role->get<std::string>() : "";
      key += '\0' + r + '\0';
      if (content != m.end()) key += content->is_string() ? content->get<std::string>() : content->dump();
      if (r == "user") break;
    }
    return key;
  }
  it = b.find("prompt");
  if (it != b.end()) {
    std::string p = it->is_string() ? it->get<std::string>() : it->dump();
    if (p.size() > prompt_bytes) p.resize(prompt_bytes);
    return std::string("prompt") + '\0' + p;
  }
  return std::nullopt;
}

Choice choose(Policy policy, const HashRing& ring, const std::optional<uint64_t>& key_hash,
              const std::vector<ReplicaState>& replicas, double balance, uint64_t rr) {
  Choice c;
  const size_t n = replicas.size();
  if (n == 0) return c;
  if (policy == Policy::kAffinity && key_hash) {
    std::vector<Candidate> cands(n);
    for (size_t i = 0; i < n; ++i) cands[i] = {replicas[i].eligible, replicas[i].in_flight};
    const BoundedPick p = pick_bounded(ring, *key_hash, cands, balance);
    c.index = p.index;
    c.affinity = p.index >= 0;
    c.home = p.home;
    return c;
  }
  if (policy == Policy::kRoundRobin) {
    for (size_t k = 0; k < n; ++k) {
      const size_t i = (rr + k) % n;
      if (replicas[i].eligible) return c.index = int(i), c;
    }
    return c;
  }
  // Least load: the router's own count is exact and current; the polled queue also sees other clients.
  int64_t best = 0;
  for (size_t k = 0; k < n; ++k) {
    const size_t i = (rr + k) % n;
    if (!replicas[i].eligible) continue;
    const int64_t load = std::max(replicas[i].in_flight, replicas[i].queued);
    if (c.index < 0 || load < best) {
      c.index = int(i);
      best = load;
    }
  }
  return c;
}

}  // namespace tern::router
