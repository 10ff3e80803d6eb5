// The one place that mutates the paged KV cache's bookkeeping (DESIGN.md principle 7): which block ids
// are free, which sequence holds which blocks (block tables), reference counts, and the prefix cache.
// The scheduler sees block ids and counts; the model runner owns the storage the ids index.
//
// Block states:  free (no owner, no content) -> in use (refcount > 0) -> on release either free again,
// or, when the block is full and registered in the prefix cache, "cached": unreferenced but reusable
// until evicted (least recently released first) when the free list runs dry.
//
// Prefix cache: a full block is keyed by a 64-bit hash chain h_i = H(h_{i-1}, tokens of block i).
// A hit is verified exactly: the entry's tokens must equal ours and its parent must be the very entry
// we matched one level up (each registration gets a unique serial; a child records its parent's).
// So a hash collision can cost a miss, never a false share.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <unordered_map>
#include <vector>

#include "core/status.h"

namespace tern {

using SeqKey = uint64_t;

// splitmix64-style chain: mixes the parent hash and every token (position-dependent).
uint64_t kv_block_hash(uint64_t parent, const int32_t* tokens, int block_size);

class KvBlockManager {
 public:
  KvBlockManager(int64_t num_blocks, int block_size, bool prefix_caching);

  int64_t num_blocks() const { return num_blocks_; }
  int block_size() const { return block_size_; }
  bool prefix_caching() const { return prefix_caching_; }
  // Blocks an allocation can take now: the free list plus the evictable cached blocks.
  int64_t num_available() const { return int64_t(free_.size()) + lru_size_; }
  int64_t num_used() const { return num_blocks_ - num_available(); }  // referenced by some sequence
  int64_t num_cached() const { return int64_t(cache_.size()); }     // registered (referenced or not)
  static int64_t blocks_for(int64_t tokens, int block_size) { return (tokens + block_size - 1) / block_size; }

  // Cached full blocks a new sequence with these known tokens could reuse: its longest cached prefix,
  // never including the block that holds the last token (its logits must be computed). Read-only.
  int64_t count_prefix_hits(std::span<const int32_t> tokens) const;

  // Starts `seq` (which must hold no blocks): reuses its cached prefix and allocates blocks so that
  // positions [0, cached + n_new) are covered, where cached = hits * block_size. Fails (changing
  // nothing) if fewer than `reserve` blocks would be left available afterwards. Returns cached tokens.
  // max_new_tokens caps n_new at (known - cached).
  Result<int64_t> start(SeqKey seq, std::span<const int32_t> tokens, int64_t max_new_tokens, int64_t reserve = 0);

  // Makes seq's table cover `positions` positions. False (changing nothing) if blocks run out.
  bool ensure(SeqKey seq, int64_t positions);
  // Blocks `ensure` would have to take.
  int64_t blocks_needed(SeqKey seq, int64_t positions) const;

  // After a step computed KV up to `num_computed` positions: registers the sequence's newly full
  // blocks in the prefix cache (no-op without prefix caching).
  void commit(SeqKey seq, std::span<const int32_t> tokens, int64_t num_computed);

  // Speculative rollback: keeps the blocks covering the first `positions` positions and releases the
  // rest (tail first). Blocks past the verified tokens were never registered (commit is only given
  // verified tokens), so nothing cached is dropped. Unknown seq: no-op.
  void truncate(SeqKey seq, int64_t positions);

  // Releases all of seq's blocks (unknown seq: no-op). Cached ones become evictable, tail first.
  void release(SeqKey seq);

  bool has(SeqKey seq) const { return seqs_.count(seq) != 0; }
  const std::vector<int32_t>& table(SeqKey seq) const;
  int32_t refcount(int32_t block) const { return ref_[size_t(block)]; }
  bool is_cached(int32_t block) const { return serial_[size_t(block)] != 0; }

  // Prefix-cache counters (blocks): lookups that reused a block vs. looked for one.
  int64_t hit_blocks() const { return hit_blocks_; }
  int64_t evictions() const { return evictions_; }

  // Full consistency check (tests, stress): refcounts equal table references, every block in exactly
  // one of free / evictable / used, cache map and block records agree. "" when consistent.
  std::string check_invariants() const;

 private:
  struct SeqBlocks {
    std::vector<int32_t> blocks;
    int64_t num_hashed = 0;      // leading blocks whose chain position is known (registered or matched)
    uint64_t last_hash = 0;      // hash of block num_hashed - 1 (chain seed when 0 blocks)
    uint64_t last_serial = 0;    // serial of the entry representing that block (0: root)
    bool chain_broken = false;   // a collision stopped registration for this sequence
  };

  int32_t take_block();                      // free list first, else evict the LRU head; -1 if none
  void acquire(int32_t block);               // refcount++ (leaves the LRU if it was there)
  void release_block(int32_t block);         // refcount--, to LRU tail or free list at 0
  void lru_push_back(int32_t block);
  void lru_remove(int32_t block);
  void uncache(int32_t block);               // drop its cache entry (block content forgotten)
  // Walks the cache along tokens; fills hits (block ids) and the matching chain state.
  void lookup(std::span<const int32_t> tokens, int64_t max_blocks, std::vector<int32_t>* hits, uint64_t* hash,
              uint64_t* serial) const;

  int64_t num_blocks_;
  int block_size_;
  bool prefix_caching_;

  std::vector<int32_t> free_;                // stack of free block ids
  std::vector<int32_t> ref_;                 // [num_blocks]
  // Cache records per block (valid while serial_ != 0).
  std::vector<uint64_t> hash_, serial_, parent_serial_;
  std::vector<int32_t> tokens_;              // [num_blocks * block_size]
  std::unordered_map<uint64_t, int32_t> cache_;  // hash -> block
  uint64_t next_serial_ = 1;
  // Intrusive LRU list of unreferenced cached blocks (head = least recently released).
  std::vector<int32_t> prev_, next_;
  std::vector<uint8_t> in_lru_;
  int32_t head_ = -1, tail_ = -1;
  int64_t lru_size_ = 0;

  std::unordered_map<SeqKey, SeqBlocks> seqs_;
  int64_t hit_blocks_ = 0, evictions_ = 0;
  std::vector<int32_t> scratch_hits_;
};

}  // namespace tern
