// The packed-weight cache: what loading a quantized safetensors checkpoint derives from it (every
// quantized linear repacked into its kernel layout, formats/quant/pack_weights.h, and the int8 / int4
// LM head rounded from a dense head) written once beside the checkpoint, and mapped in place by later
// loads instead of being rebuilt (issue 20 item 5: the 1B int8 checkpoint spent seconds repacking).
//
// File DIR/tern-packed-weights.bin, little-endian:
//   header  "TERNPKW1" | u32 version | u32 entries | u64 key | u64 payload_offset | u64 payload_bytes
//           | u64 chunk_bytes | u64 chunks | u64 chunk_hash[chunks] | entries | u64 header_hash
//   entry   u16 name_len | name | u8 format | u8 int8_activations | u32 group | i64 rows, cols
//           | u64 quant_bytes | u64 offset of data, scales, zeros, col_perm (relative to the payload; ~0 = none)
//   payload the entries' arrays, each 64-byte aligned, payload_offset a multiple of the page size
//
// A cache is used only when everything matches: magic, version, the key (the identity of every file
// it was derived from: name, size, inode, mtime and ctime in ns, plus the config.json bytes and the
// load options that change what is derived), the header hash, every entry's arrays inside the payload
// at the sizes its format and shape imply, and the XXH3 hash of every payload chunk (verified on the
// load's threads). A full verification leaves a stamp beside the cache (DIR/tern-packed-weights.bin.verified:
// the cache file's device, inode, size, mtime and ctime, its key and header hash); while the cache file
// still matches its stamp (no write to it since: its ctime would have moved) its payload is not hashed
// again, which took half a second of every start-up of a 1B model. Anything else is a
// miss: the load derives the weights itself and rewrites the file (atomically: a temporary file
// renamed over it), or, when the directory cannot be written, simply keeps them in memory.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "core/mapped_file.h"
#include "core/status.h"
#include "core/thread_pool.h"
#include "core/weight_matrix.h"

namespace tern {

class SafetensorsStore;

inline constexpr const char* kPackedCacheFile = "tern-packed-weights.bin";
// Beside the cache: the stamp of its last full verification (PackedCache::open).
inline constexpr const char* kStampSuffix = ".verified";

// The identity a cache must carry to be used for `dir`: the checkpoint files (as the store opened
// them) and config.json under stat, plus `options_tag` (what else changes the derived weights).
Result<uint64_t> packed_cache_key(const std::string& dir, const SafetensorsStore& store, const std::string& options_tag);

class PackedCache {
 public:
  // The cache at `path` if it is complete, uncorrupted and made for `key`; an error saying why not
  // otherwise (a missing file included). pool: the threads that verify the payload hashes (may be null).
  static Result<PackedCache> open(const std::string& path, uint64_t key, ThreadPool* pool);

  // The matrix stored as `name` ("model.layers.0.mlp.up_proj", "model.layers.0.self_attn.qkv_proj[1]",
  // "lm_head#int8"), pointing into the mapping, if it is there with this shape.
  const WeightMatrix* find(const std::string& name, int64_t rows, int64_t cols) const;
  size_t entries() const { return entries_.size(); }
  size_t payload_bytes() const { return payload_bytes_; }
  // Whether open() hashed the payload (false: the stamp of an earlier verification matched the file).
  bool hashed() const { return hashed_; }

 private:
  std::shared_ptr<MappedFile> file_;
  std::map<std::string, WeightMatrix> entries_;
  size_t payload_bytes_ = 0;
  bool hashed_ = true;
};

// Collects the derived matrices of one load and writes them as a cache for `key`.
class PackedCacheWriter {
 public:
  // Quantized formats only (Int8Channel, Int4Group, Fp8E4M3); other matrices are not recorded.
  void add(const std::string& name, const WeightMatrix& w);
  size_t entries() const { return entries_.size(); }
  // Writes path.tmp.<pid> and renames it over `path`; on failure removes the temporary file and says
  // why (a read-only directory, a full disk): the caller goes on with the weights it has.
  Status write(const std::string& path, uint64_t key) const;

 private:
  std::vector<std::pair<std::string, WeightMatrix>> entries_;
};

}  // namespace tern
