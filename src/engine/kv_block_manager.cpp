#include "engine/kv_block_manager.h"

#include <fmt/format.h>

#include <algorithm>
#include <cassert>
#include <cstring>

namespace tern {

namespace {

uint64_t mix64(uint64_t z) {  // splitmix64 finalizer: a bijection with full avalanche
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

}  // namespace

uint64_t kv_block_hash(uint64_t parent, const int32_t* tokens, int block_size) {
  uint64_t h = mix64(parent ^ 0x9e3779b97f4a7c15ULL);
  for (int i = 0; i < block_size; ++i) {
    h = mix64(h + uint64_t(uint32_t(tokens[i])) * 0xff51afd7ed558ccdULL + uint64_t(i));
  }
  return h;
}

KvBlockManager::KvBlockManager(int64_t num_blocks, int block_size, bool prefix_caching)
    : num_blocks_(num_blocks), block_size_(block_size), prefix_caching_(prefix_caching) {
  const size_t n = size_t(num_blocks);
  ref_.assign(n, 0);
  hash_.assign(n, 0);
  serial_.assign(n, 0);
  parent_serial_.assign(n, 0);
  if (prefix_caching) tokens_.assign(n * size_t(block_size), 0);
  prev_.assign(n, -1);
  next_.assign(n, -1);
  in_lru_.assign(n, 0);
  free_.reserve(n);
  // Stack order: block 0 is handed out first (easier to read in tests).
  for (int64_t b = num_blocks - 1; b >= 0; --b) free_.push_back(int32_t(b));
}

const std::vector<int32_t>& KvBlockManager::table(SeqKey seq) const {
  static const std::vector<int32_t> kEmpty;
  auto it = seqs_.find(seq);
  return it == seqs_.end() ? kEmpty : it->second.blocks;
}

void KvBlockManager::lru_push_back(int32_t b) {
  prev_[size_t(b)] = tail_;
  next_[size_t(b)] = -1;
  if (tail_ >= 0) next_[size_t(tail_)] = b; else head_ = b;
  tail_ = b;
  in_lru_[size_t(b)] = 1;
  ++lru_size_;
}

void KvBlockManager::lru_remove(int32_t b) {
  const int32_t p = prev_[size_t(b)], n = next_[size_t(b)];
  if (p >= 0) next_[size_t(p)] = n; else head_ = n;
  if (n >= 0) prev_[size_t(n)] = p; else tail_ = p;
  prev_[size_t(b)] = next_[size_t(b)] = -1;
  in_lru_[size_t(b)] = 0;
  --lru_size_;
}

void KvBlockManager::uncache(int32_t b) {
  auto it = cache_.find(hash_[size_t(b)]);
  if (it != cache_.end() && it->second == b) cache_.erase(it);
  serial_[size_t(b)] = 0;
  if (in_lru_[size_t(b)]) {
    lru_remove(b);
    free_.push_back(b);
  }
}

int32_t KvBlockManager::take_block() {
  if (!free_.empty()) {
    const int32_t b = free_.back();
    free_.pop_back();
    return b;
  }
  if (head_ < 0) return -1;
  const int32_t b = head_;  // least recently released cached block
  lru_remove(b);
  auto it = cache_.find(hash_[size_t(b)]);
  if (it != cache_.end() && it->second == b) cache_.erase(it);
  serial_[size_t(b)] = 0;  // its cached children become unreachable: their parent serial is gone
  ++evictions_;
  return b;
}

void KvBlockManager::acquire(int32_t b) {
  if (ref_[size_t(b)] == 0 && in_lru_[size_t(b)]) lru_remove(b);
  ++ref_[size_t(b)];
}

void KvBlockManager::release_block(int32_t b) {
  assert(ref_[size_t(b)] > 0);
  if (--ref_[size_t(b)] > 0) return;
  if (serial_[size_t(b)] != 0) {
    lru_push_back(b);
  } else {
    free_.push_back(b);
  }
}

void KvBlockManager::lookup(std::span<const int32_t> tokens, int64_t max_blocks, std::vector<int32_t>* hits,
                            uint64_t* hash, uint64_t* serial) const {
  hits->clear();
  uint64_t h = 0, s = 0;
  for (int64_t i = 0; i < max_blocks; ++i) {
    const int32_t* blk = tokens.data() + i * block_size_;
    const uint64_t hh = kv_block_hash(h, blk, block_size_);
    auto it = cache_.find(hh);
    if (it == cache_.end()) break;
    const int32_t e = it->second;
    if (parent_serial_[size_t(e)] != s ||
        std::memcmp(&tokens_[size_t(e) * size_t(block_size_)], blk, sizeof(int32_t) * size_t(block_size_)) != 0) {
      break;  // a collision or a stale entry: a miss, never a false share
    }
    hits->push_back(e);
    h = hh;
    s = serial_[size_t(e)];
  }
  *hash = h;
  *serial = s;
}

int64_t KvBlockManager::count_prefix_hits(std::span<const int32_t> tokens) const {
  if (!prefix_caching_ || tokens.empty()) return 0;
  std::vector<int32_t> hits;
  uint64_t h, s;
  lookup(tokens, (int64_t(tokens.size()) - 1) / block_size_, &hits, &h, &s);
  return int64_t(hits.size());
}

Result<int64_t> KvBlockManager::start(SeqKey seq, std::span<const int32_t> tokens, int64_t max_new_tokens,
                                      int64_t reserve) {
  if (seqs_.count(seq)) return Status::error(fmt::format("sequence {} already holds KV blocks", seq));
  const int64_t known = int64_t(tokens.size());
  uint64_t h = 0, s = 0;
  scratch_hits_.clear();
  if (prefix_caching_ && known > 0) lookup(tokens, (known - 1) / block_size_, &scratch_hits_, &h, &s);
  const int64_t n_hits = int64_t(scratch_hits_.size());
  const int64_t cached = n_hits * block_size_;
  const int64_t n_new = std::clamp<int64_t>(known - cached, 0, std::max<int64_t>(max_new_tokens, 0));
  const int64_t new_blocks = std::max<int64_t>(blocks_for(cached + n_new, block_size_) - n_hits, 0);
  int64_t cost = new_blocks;
  for (int32_t b : scratch_hits_) cost += ref_[size_t(b)] == 0 ? 1 : 0;  // leaving the LRU
  if (num_available() - cost < reserve) {
    return Status::error(fmt::format("KV blocks exhausted: need {}, {} available", cost, num_available()));
  }
  SeqBlocks sb;
  sb.blocks.reserve(size_t(n_hits + new_blocks));
  for (int32_t b : scratch_hits_) {
    acquire(b);
    sb.blocks.push_back(b);
  }
  for (int64_t i = 0; i < new_blocks; ++i) {
    const int32_t b = take_block();
    assert(b >= 0);
    acquire(b);
    sb.blocks.push_back(b);
  }
  sb.num_hashed = n_hits;
  sb.last_hash = h;
  sb.last_serial = s;
  hit_blocks_ += n_hits;
  seqs_.emplace(seq, std::move(sb));
  return cached;
}

int64_t KvBlockManager::blocks_needed(SeqKey seq, int64_t positions) const {
  auto it = seqs_.find(seq);
  const int64_t have = it == seqs_.end() ? 0 : int64_t(it->second.blocks.size());
  return std::max<int64_t>(blocks_for(positions, block_size_) - have, 0);
}

bool KvBlockManager::ensure(SeqKey seq, int64_t positions) {
  auto it = seqs_.find(seq);
  if (it == seqs_.end()) return false;
  const int64_t need = blocks_needed(seq, positions);
  if (need > num_available()) return false;
  for (int64_t i = 0; i < need; ++i) {
    const int32_t b = take_block();
    acquire(b);
    it->second.blocks.push_back(b);
  }
  return true;
}

void KvBlockManager::commit(SeqKey seq, std::span<const int32_t> tokens, int64_t num_computed) {
  if (!prefix_caching_) return;
  auto it = seqs_.find(seq);
  if (it == seqs_.end()) return;
  SeqBlocks& sb = it->second;
  const size_t bs = size_t(block_size_);
  while (!sb.chain_broken && sb.num_hashed < int64_t(sb.blocks.size()) &&
         (sb.num_hashed + 1) * block_size_ <= num_computed &&
         (sb.num_hashed + 1) * block_size_ <= int64_t(tokens.size())) {
    const int32_t* blk = tokens.data() + sb.num_hashed * block_size_;
    const int32_t b = sb.blocks[size_t(sb.num_hashed)];
    const uint64_t h = kv_block_hash(sb.last_hash, blk, block_size_);
    auto found = cache_.find(h);
    if (found != cache_.end()) {
      const int32_t e = found->second;
      const bool same = parent_serial_[size_t(e)] == sb.last_serial &&
                        std::memcmp(&tokens_[size_t(e) * bs], blk, sizeof(int32_t) * bs) == 0;
      if (same) {  // another sequence computed the same block first: it stays the shared copy
        sb.last_serial = serial_[size_t(e)];
        sb.last_hash = h;
        ++sb.num_hashed;
        continue;
      }
      if (ref_[size_t(e)] != 0) {  // a true collision with a block in use: stop caching this sequence
        sb.chain_broken = true;
        break;
      }
      uncache(e);  // stale (its parent was evicted) or colliding and unused: replace it
    }
    hash_[size_t(b)] = h;
    serial_[size_t(b)] = next_serial_++;
    parent_serial_[size_t(b)] = sb.last_serial;
    std::memcpy(&tokens_[size_t(b) * bs], blk, sizeof(int32_t) * bs);
    cache_.emplace(h, b);
    sb.last_serial = serial_[size_t(b)];
    sb.last_hash = h;
    ++sb.num_hashed;
  }
}

void KvBlockManager::truncate(SeqKey seq, int64_t positions) {
  auto it = seqs_.find(seq);
  if (it == seqs_.end()) return;
  SeqBlocks& sb = it->second;
  const size_t keep = size_t(std::max<int64_t>(blocks_for(positions, block_size_), 0));
  while (sb.blocks.size() > keep) {
    release_block(sb.blocks.back());
    sb.blocks.pop_back();
  }
  if (sb.num_hashed > int64_t(keep)) {  // cannot happen for drafts (never committed); stay consistent anyway
    sb.num_hashed = int64_t(keep);
    sb.chain_broken = true;  // the chain state past `keep` is lost: stop registering this sequence
  }
}

void KvBlockManager::release(SeqKey seq) {
  auto it = seqs_.find(seq);
  if (it == seqs_.end()) return;
  // Tail first: the end of a chain is the least likely to be shared, so it is evicted first.
  for (auto b = it->second.blocks.rbegin(); b != it->second.blocks.rend(); ++b) release_block(*b);
  seqs_.erase(it);
}

std::string KvBlockManager::check_invariants() const {
  const size_t n = size_t(num_blocks_);
  std::vector<int32_t> refs(n, 0);
  for (const auto& [key, sb] : seqs_) {
    std::vector<int32_t> sorted = sb.blocks;
    std::sort(sorted.begin(), sorted.end());
    if (std::adjacent_find(sorted.begin(), sorted.end()) != sorted.end())
      return fmt::format("sequence {} holds a block twice", key);
    for (int32_t b : sb.blocks) {
      if (b < 0 || b >= num_blocks_) return fmt::format("sequence {} holds block id {} out of range", key, b);
      ++refs[size_t(b)];
    }
  }
  std::vector<int> in_free(n, 0);
  for (int32_t b : free_) ++in_free[size_t(b)];
  int64_t lru_walk = 0;
  for (int32_t b = head_; b >= 0; b = next_[size_t(b)]) {
    if (!in_lru_[size_t(b)]) return fmt::format("block {} linked in the LRU but not marked", b);
    if (++lru_walk > num_blocks_) return "LRU list has a cycle";
  }
  if (lru_walk != lru_size_) return fmt::format("LRU size {} but {} linked", lru_size_, lru_walk);
  int64_t n_cached = 0;
  for (size_t b = 0; b < n; ++b) {
    if (refs[b] != ref_[b]) return fmt::format("block {} refcount {} but {} tables hold it", b, ref_[b], refs[b]);
    const bool cached = serial_[b] != 0;
    n_cached += cached;
    const int states = (in_free[b] > 0) + int(in_lru_[b]) + (ref_[b] > 0);
    if (states != 1 || in_free[b] > 1) return fmt::format("block {} is in {} states (free x{})", b, states, in_free[b]);
    if (in_free[b] && cached) return fmt::format("block {} is free but still cached", b);
    if (in_lru_[b] && !cached) return fmt::format("block {} is evictable but not cached", b);
    if (cached) {
      auto it = cache_.find(hash_[b]);
      if (it == cache_.end() || it->second != int32_t(b)) return fmt::format("cached block {} missing from the map", b);
    }
  }
  if (n_cached != int64_t(cache_.size())) return fmt::format("{} cached blocks but {} map entries", n_cached, cache_.size());
  return "";
}

}  // namespace tern
