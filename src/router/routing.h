// The router's choice of a replica for one request: prefix affinity (consistent hashing with bounded
// load, hash_ring.h) for requests that carry a prompt, least load for the rest, or round robin (a
// baseline for benchmarks). Pure functions of the replicas' state: the router calls them on its I/O thread.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"
#include "router/hash_ring.h"
#include "router/prefix_table.h"

namespace tern::router {

enum class Policy { kAffinity, kLeastLoad, kRoundRobin };

Result<Policy> parse_policy(std::string_view name);  // "affinity", "least-load", "round-robin"
const char* policy_name(Policy p);

// What identifies a conversation's cached prefix, from a request body (the JSON as the client sent it):
//  - chat (`messages`): the messages up to and including the first user message, each as role and
//    content. Every later turn of the conversation resends them unchanged, so all its turns hash alike
//    and land where the KV blocks of the earlier turns are (hashing the history up to the *last* turn
//    would change with every turn and scatter the conversation);
//  - completions (`prompt`): its first `prompt_bytes` bytes (a string; token ids or a list: the JSON text).
// None for other bodies (no prompt, not JSON): those go by least load.
std::optional<std::string> affinity_key(std::string_view body, size_t prompt_bytes);

// Both of a request's affinity keys from one parse of its body: the ring key above (its hash) and the
// chain of its prompt's prefix hashes, shortest first (prefix_table.h): chat, one after each message
// (role and content) from the first user message on (the ring key covers what comes before it; a
// system prompt all conversations share must not pull them all to one replica); completions, one
// every kPromptChunk bytes of the prompt and one for all of it.
struct AffinityKeys {
  uint64_t home = 0;
  std::vector<uint64_t> chain;
};
std::optional<AffinityKeys> affinity_keys(std::string_view body, size_t prompt_bytes);

struct ReplicaState {
  bool eligible = false;  // healthy, in the set, not yet tried for this request
  int64_t in_flight = 0;  // the router's requests on it now
  int64_t queued = 0;     // running + waiting from its last /metrics (other clients included)
};

struct Choice {
  int index = -1;          // -1: no eligible replica
  bool affinity = false;   // chosen by prefix affinity
  bool home = false;       // an affinity hit: the replica that got its longest prefix, or (a prompt not
                           // seen before) its ring home; else a spill (those were full or down)
  bool prefix = false;     // chosen because it got a prefix of this prompt before
};

// `rr`: a counter the caller advances per request (round robin, and the start of least-load's tie-break
// so idle replicas share the first requests). `balance`: the load bound (hash_ring.h). `holders`:
// affinity only, the replicas (indices) that got a prefix of this prompt before, deepest prefix first
// (PrefixTable::holders): the first of them under the load bound takes it, else the ring walk does.
Choice choose(Policy policy, const HashRing& ring, const std::optional<uint64_t>& key_hash,
              const std::vector<ReplicaState>& replicas, Balance balance, uint64_t rr,
              const std::vector<int>& holders = {});

}  // namespace tern::router
