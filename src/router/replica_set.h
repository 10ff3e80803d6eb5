// The router's replicas: their addresses (from --replica or a file), health, load and counters, and the
// hash ring over them. A ReplicaSet belongs to the router's I/O thread: every field is read and written
// there (routing, health checks and /metrics all run on it), so nothing here locks.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_set>
#include <vector>

#include "core/status.h"
#include "router/hash_ring.h"

namespace tern::router {

struct ReplicaAddress {
  std::string url;   // canonical: http://host:port
  std::string host;  // as given (a name, an IPv4 address, or an IPv6 address without brackets)
  std::string port;
};

// "http://host:port", "host:port", "http://[::1]:8080", a trailing "/" allowed; no other path, no https.
Result<ReplicaAddress> parse_replica_url(std::string_view text);
// One URL a line; blank lines and "# comments" skipped; errors name `source` and the line. Duplicates
// are an error (two entries for one replica would double its share of the ring).
Result<std::vector<ReplicaAddress>> parse_replica_list(std::string_view text, const std::string& source);
Result<std::vector<ReplicaAddress>> load_replica_file(const std::string& path);

// A request in flight on a replica, told when the replica is taken out of the rotation (I/O thread).
class ReplicaUser {
 public:
  virtual void replica_failed(const std::string& why) = 0;

 protected:
  ~ReplicaUser() = default;
};

struct Replica {
  ReplicaAddress addr;
  bool healthy = false;   // the last health check or request went through
  bool checked = false;   // a health check has answered (or failed) at least once
  int checks = 0;         // health checks under way (a new one goes out every interval, even while one is pending)
  int64_t in_flight = 0;  // the router's requests on it now
  int64_t queued = 0;     // running + waiting from its last /metrics
  std::string last_error;
  // Counters for /metrics.
  uint64_t requests = 0, retries = 0, failures = 0, affinity_hits = 0, affinity_spills = 0, cut_streams = 0;
  uint64_t went_down = 0;
  // The last byte that came from it on any connection (checks, requests, streams): a hung replica is one
  // that left a check unanswered and sent nothing else either (liveness.h).
  std::chrono::steady_clock::time_point last_heard{};
  std::unordered_set<ReplicaUser*> users;  // requests in flight on it (each removes itself when done)
};

class ReplicaSet {
 public:
  // Replaces the set. A replica kept (same URL) keeps its state and counters; a new one starts unchecked
  // (not routed to until a health check passes); a dropped one finishes the requests it has.
  void assign(const std::vector<ReplicaAddress>& addresses);
  const std::vector<std::shared_ptr<Replica>>& all() const { return replicas_; }
  const HashRing& ring() const { return ring_; }

 private:
  std::vector<std::shared_ptr<Replica>> replicas_;
  HashRing ring_;
};

}  // namespace tern::router
