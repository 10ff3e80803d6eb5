// A read-mostly string -> int32 hash map for the encode hot path: open addressing over one contiguous slot array,
// keys stored in one arena, hashes compared before bytes. Lookups take string_view and never allocate.
#pragma once

#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

namespace tern::tok {

inline uint64_t hash_bytes(std::string_view s) {
  // 8 bytes per step, multiply-xorshift mixing; good enough spread for token-sized keys.
  constexpr uint64_t kMul = 0x9E3779B97F4A7C15ull;
  uint64_t h = 0x243F6A8885A308D3ull ^ (s.size() * kMul);
  const char* p = s.data();
  size_t n = s.size();
  while (n >= 8) {
    uint64_t w;
    std::memcpy(&w, p, 8);
    h = (h ^ w) * kMul;
    h ^= h >> 29;
    p += 8;
    n -= 8;
  }
  if (n > 0) {
    uint64_t w = 0;
    std::memcpy(&w, p, n);
    h = (h ^ w) * kMul;
    h ^= h >> 29;
  }
  h *= 0xBF58476D1CE4E5B9ull;
  return h ^ (h >> 31);
}

class FlatStringMap {
 public:
  // Inserting an existing key keeps the first value. Not for concurrent use while inserting.
  // Keys total at most 4 GiB (offsets are 32-bit); longer keys are not stored.
  void insert(std::string_view key, int32_t value) {
    if (arena_.size() + key.size() > UINT32_MAX) return;
    if ((count_ + 1) * 2 > slots_.size()) grow();
    place(key, hash_bytes(key), value);
  }

  // -1 when absent. `h` must be hash_bytes(key) (callers probing several maps hash once).
  int32_t find(std::string_view key, uint64_t h) const {
    if (slots_.empty()) return -1;
    const uint32_t tag = static_cast<uint32_t>(h >> 32);
    for (size_t i = h & mask_;; i = (i + 1) & mask_) {
      const Slot& s = slots_[i];
      if (s.value < 0) return -1;
      if (s.tag == tag && s.len == key.size() && std::memcmp(arena_.data() + s.off, key.data(), key.size()) == 0)
        return s.value;
    }
  }
  int32_t find(std::string_view key) const { return find(key, hash_bytes(key)); }

  // Room for n keys of `key_bytes` bytes in all without growing (a table built once, of known size).
  void reserve(size_t n, size_t key_bytes) {
    size_t cap = 64;
    while (cap < n * 2) cap <<= 1;
    if (cap > slots_.size()) {
      std::vector<Slot> old = std::move(slots_);
      slots_.assign(cap, Slot{});
      mask_ = cap - 1;
      rehash(old);
    }
    arena_.reserve(key_bytes);
  }

  size_t size() const { return count_; }

 private:
  struct Slot {  // 16 bytes: four slots per cache line
    uint32_t tag = 0;  // high half of the hash (the low bits pick the slot)
    uint32_t off = 0;
    uint32_t len = 0;
    int32_t value = -1;  // -1: empty
  };

  void place(std::string_view key, uint64_t h, int32_t value) {
    const uint32_t tag = static_cast<uint32_t>(h >> 32);
    for (size_t i = h & mask_;; i = (i + 1) & mask_) {
      Slot& s = slots_[i];
      if (s.value < 0) {
        s = Slot{tag, static_cast<uint32_t>(arena_.size()), static_cast<uint32_t>(key.size()), value};
        arena_.append(key);
        ++count_;
        return;
      }
      if (s.tag == tag && s.len == key.size() && arena_.compare(s.off, s.len, key) == 0) return;
    }
  }

  void grow() {
    std::vector<Slot> old = std::move(slots_);
    slots_.assign(old.empty() ? 64 : old.size() * 2, Slot{});
    mask_ = slots_.size() - 1;
    rehash(old);
  }

  void rehash(const std::vector<Slot>& old) {
    for (const Slot& s : old) {
      if (s.value < 0) continue;
      const uint64_t h = hash_bytes(std::string_view(arena_).substr(s.off, s.len));
      for (size_t i = h & mask_;; i = (i + 1) & mask_) {
        if (slots_[i].value < 0) {
          slots_[i] = s;
          break;
        }
      }
    }
  }

  std::vector<Slot> slots_;
  std::string arena_;
  size_t mask_ = 0;
  size_t count_ = 0;
};

}  // namespace tern::tok
