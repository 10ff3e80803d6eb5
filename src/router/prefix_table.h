// The router's memory of where it sent each prompt prefix: an approximation of which replica holds the
// KV blocks of a prefix (a replica's prefix cache keeps recent prefixes; the router cannot see it, so it
// remembers what it sent where). A request's prefixes are a chain of hashes, shortest first: chat at each
// message boundary ([m1], [m1 m2], ...), completions every kPromptChunk bytes of the prompt. The request
// goes to the replica that got the deepest of them (routing.h), so a conversation follows its history:
// two conversations that open alike (one system prompt and first question for every user) part ways at
// their first different message, and one that spilled to another replica stays where its cache now is.
// Bounded: past `capacity` prefixes the least recently sent go first. Router I/O thread only.
#pragma once

#include <cstdint>
#include <list>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace tern::router {

inline constexpr size_t kPromptChunk = 256;  // completions: a prefix every this many bytes
inline constexpr size_t kMaxChain = 256;     // prefixes per request (a longer prompt's tail is not told apart)

class PrefixTable {
 public:
  explicit PrefixTable(size_t capacity = size_t(1) << 17);

  // The replicas (ids as recorded) that got a prefix of `chain`, deepest prefix first, each once.
  std::vector<std::string> holders(const std::vector<uint64_t>& chain) const;
  // `id` got every prefix of `chain` now (each prefix remembers only the latest replica).
  void record(const std::vector<uint64_t>& chain, const std::string& id);
  size_t size() const { return map_.size(); }

 private:
  struct Entry {
    uint32_t id;
    std::list<uint64_t>::iterator at;  // in lru_
  };
  uint32_t intern(const std::string& id);

  size_t capacity_;
  std::vector<std::string> ids_;
  std::unordered_map<std::string, uint32_t> id_of_;
  std::list<uint64_t> lru_;  // most recent first
  std::unordered_map<uint64_t, Entry> map_;
};

}  // namespace tern::router
