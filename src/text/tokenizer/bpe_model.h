// Byte-pair encoding of one pre-token. Two alphabets:
//  - byte-level (GPT-2 / Llama-3): the vocab is written in the byte-level alphabet; at load each token is mapped
//    back to the raw bytes it stands for, so encoding works on raw bytes with no per-call string mapping;
//  - character (SentencePiece-style BPE): initial symbols are UTF-8 characters, with unk / byte_fallback.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "core/status.h"
#include "text/tokenizer/flat_string_map.h"
#include "text/tokenizer/tokenizer_spec.h"

namespace tern::tok {

// (left id, right id) -> (rank, merged id): open addressing, built once, read-only afterwards.
class MergeTable {
 public:
  struct Entry {
    uint64_t key = kEmpty;
    int32_t rank = 0;
    int32_t id = 0;
  };
  static constexpr uint64_t kEmpty = ~0ull;

  void build(const std::vector<std::pair<uint64_t, std::pair<int32_t, int32_t>>>& items);
  static uint64_t key(int32_t a, int32_t b) { return (uint64_t(uint32_t(a)) << 32) | uint32_t(b); }
  const Entry* find(int32_t a, int32_t b) const {
    if (slots_.empty()) return nullptr;
    const uint64_t k = key(a, b);
    for (size_t i = hash(k);; i = (i + 1) & mask_) {
      const Entry& e = slots_[i];
      if (e.key == k) return &e;
      if (e.key == kEmpty) return nullptr;
    }
  }

 private:
  // The top bits of the product depend on every key bit (both ids).
  size_t hash(uint64_t k) const { return size_t((k * 0x9E3779B97F4A7C15ull) >> shift_); }
  std::vector<Entry> slots_;
  size_t mask_ = 0;
  int shift_ = 63;
};

struct StringHash {
  using is_transparent = void;
  size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
};
using StringIdMap = std::unordered_map<std::string, int32_t, StringHash, std::equal_to<>>;

// Per-call working memory of BpeModel::encode: the symbol buffer and a word -> ids cache, so that a word repeated
// within one text is merged once. Owned by the caller (one per encode call), so the model stays immutable.
struct BpeScratch {
  std::vector<int32_t> syms;
  FlatStringMap cache;                             // word -> index into spans
  std::vector<std::pair<uint32_t, uint32_t>> spans;  // (offset, count) into ids
  std::vector<int32_t> ids;
  static constexpr size_t kMaxEntries = 1 << 16;   // bounds memory on huge inputs
  static constexpr size_t kMaxWordBytes = 64;      // long words are rare and not worth keeping
};

class BpeModel {
 public:
  static Result<BpeModel> build(const BpeSpec& spec, bool byte_level);

  // Appends the ids of one pre-token (raw bytes; any bytes are accepted).
  void encode(std::string_view piece, std::vector<int32_t>& out, BpeScratch& scratch) const;

  int64_t size() const { return static_cast<int64_t>(tokens_.size()); }
  const std::vector<std::string>& tokens() const { return tokens_; }  // vocab form, "" for holes
  int32_t vocab_id(std::string_view token) const { return vocab_.find(token); }  // vocab form -> id, -1: none
  bool byte_level() const { return byte_level_; }

  // The merge loop on initial symbol ids (exposed so tests can check both strategies agree).
  void merge_small(std::vector<int32_t>& syms) const;  // O(n^2) scan: fastest for short words
  void merge_heap(std::vector<int32_t>& syms) const;   // O(n log n): long words

 private:
  void initial_symbols(std::string_view piece, std::vector<int32_t>& syms) const;

  bool byte_level_ = false;
  bool ignore_merges_ = false;
  bool byte_fallback_ = false;
  bool fuse_unk_ = false;
  int32_t unk_id_ = -1;
  std::vector<std::string> tokens_;
  FlatStringMap vocab_;               // vocab form -> id
  FlatStringMap raw_vocab_;           // byte-level: raw bytes -> id; character mode: the vocab strings
  std::array<int32_t, 256> byte_ids_{};  // byte-level: initial symbol of each byte; character mode: <0xXX>
  MergeTable merges_;
};

}  // namespace tern::tok
