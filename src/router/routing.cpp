// The router's choice of a replica (routing.h).
#include "router/routing.h"

#include <algorithm>

#include <nlohmann/json.hpp>

#include "formats/json_util.h"

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

namespace {

// The ring key and, when `chain` is given, the prefix chain (routing.h).
std::optional<std::string> keys(std::string_view body, size_t prompt_bytes, std::vector<uint64_t>* chain) {
  // A body nested past what any request needs is no affinity key (the replica answers it with a 400):
  // dump() below recurses, and a 100,000-deep content would overflow the router's stack.
  if (json_nesting_depth(body) > 256) return std::nullopt;
  const json b = json::parse(body, nullptr, false);
  if (b.is_discarded() || !b.is_object()) return std::nullopt;
  PrefixHasher h;
  auto it = b.find("messages");
  if (it != b.end() && it->is_array() && !it->empty()) {
    std::string key = "chat";
    bool user_seen = false;
    h.add(key);
    for (const json& m : *it) {
      if (!m.is_object()) return std::nullopt;
      const auto role = m.find("role");
      const auto content = m.find("content");
      std::string part = "";
      part += '\0';
      part += role != m.end() && role->is_string() ? role->get<std::string>() : "";
      part += '\0';
      if (content != m.end()) part += content->is_string() ? content->get<std::string>() : content->dump();
      if (!user_seen) key += part;
      user_seen = user_seen || (role != m.end() && role->is_string() && *role == "user");
      if (!chain) {
        if (user_seen) break;
        continue;
      }
      h.add(part);
      // Prefixes from the first user message on: a shorter one (a system prompt every conversation
      // shares) would pull every new conversation to whichever replica got it last.
      if (user_seen && chain->size() < kMaxChain) chain->push_back(h.value());
    }
    return key;
  }
  it = b.find("prompt");
  if (it != b.end()) {
    const std::string p = it->is_string() ? it->get<std::string>() : it->dump();
    if (chain) {
      h.add("prompt");
      for (size_t at = 0; at < p.size() && chain->size() + 1 < kMaxChain; at += kPromptChunk) {
        h.add(std::string_view(p).substr(at, kPromptChunk));
        if (at + kPromptChunk <= p.size()) chain->push_back(h.value());
      }
      if (p.size() % kPromptChunk != 0 || p.empty()) {
        PrefixHasher whole;
        whole.add("prompt");
        whole.add(p);
        chain->push_back(whole.value());
      }
    }
    return std::string("prompt") + '\0' + p.substr(0, std::min(p.size(), prompt_bytes));
  }
  return std::nullopt;
}

}  // namespace

std::optional<std::string> affinity_key(std::string_view body, size_t prompt_bytes) {
  return keys(body, prompt_bytes, nullptr);
}

std::optional<AffinityKeys> affinity_keys(std::string_view body, size_t prompt_bytes) {
  AffinityKeys k;
  const std::optional<std::string> home = keys(body, prompt_bytes, &k.chain);
  if (!home) return std::nullopt;
  k.home = hash_bytes(*home);
  return k;
}

Choice choose(Policy policy, const HashRing& ring, const std::optional<uint64_t>& key_hash,
              const std::vector<ReplicaState>& replicas, Balance balance, uint64_t rr, const std::vector<int>& holders) {
  Choice c;
  const size_t n = replicas.size();
  if (n == 0) return c;
  if (policy == Policy::kAffinity && key_hash) {
    std::vector<Candidate> cands(n);
    for (size_t i = 0; i < n; ++i) cands[i] = {replicas[i].eligible, replicas[i].in_flight};
    const double bound = load_bound(cands, balance);
    bool holder_full = false;  // the prompt's cache is on a replica that cannot take more now
    for (int i : holders) {
      if (i < 0 || size_t(i) >= n || !cands[size_t(i)].eligible) continue;
      if (double(cands[size_t(i)].load) < bound) {
        c.index = i;
        c.affinity = c.home = c.prefix = true;
        return c;
      }
      holder_full = true;
    }
    // Not seen before (or its holders are full): a conversation's first turn picks where the rest of it
    // will go (the table follows it), so it goes by two choices on the ring, not by its hash alone:
    // 32 conversations hashed onto 3 replicas land e.g. 13 / 11 / 8, and the busiest sets everyone's pace.
    const BoundedPick p = pick_bounded(ring, *key_hash, cands, balance, 2);
    c.index = p.index;
    c.affinity = p.index >= 0;
    c.home = p.home && !holder_full;
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
