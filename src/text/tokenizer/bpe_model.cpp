#include "text/tokenizer/bpe_model.h"

#include <algorithm>
#include <cstdio>
#include <queue>

#include "text/tokenizer/utf8.h"

namespace tern::tok {

void MergeTable::build(const std::vector<std::pair<uint64_t, std::pair<int32_t, int32_t>>>& items) {
  // Load factor kept in (3/8, 3/4]: linear probing still finds a merge in ~2 probes, and Llama 3's
  // 280k merges take 2^19 slots (8 MiB) rather than 2^20 (16 MiB resident for every run).
  size_t cap = 16;
  shift_ = 60;
  while (cap * 3 < items.size() * 4) cap <<= 1, --shift_;
  slots_.assign(cap, Entry{});
  mask_ = cap - 1;
  for (const auto& [k, v] : items) {
    size_t i = hash(k);
    while (slots_[i].key != kEmpty && slots_[i].key != k) i = (i + 1) & mask_;
    if (slots_[i].key == k) continue;  // a repeated merge keeps its first (best) rank
    slots_[i] = Entry{k, v.first, v.second};
  }
}

Result<BpeModel> BpeModel::build(const BpeSpec& spec, bool byte_level) {
  BpeModel m;
  m.byte_level_ = byte_level;
  m.ignore_merges_ = spec.ignore_merges;
  m.byte_fallback_ = spec.byte_fallback;
  m.fuse_unk_ = spec.fuse_unk;
  int32_t max_id = -1;
  for (const auto& [tok, id] : spec.vocab) max_id = std::max(max_id, id);
  if (max_id >= (1 << 26)) return Status::error("vocab id " + std::to_string(max_id) + " is implausibly large");
  m.tokens_.assign(static_cast<size_t>(max_id + 1), std::string());
  size_t vocab_bytes = 0;
  for (const auto& [tok, id] : spec.vocab) vocab_bytes += tok.size();
  m.vocab_.reserve(spec.vocab.size(), vocab_bytes);
  std::vector<bool> seen(m.tokens_.size(), false);
  for (const auto& [tok, id] : spec.vocab) {
    if (seen[id]) return Status::error("vocab id " + std::to_string(id) + " is used by two tokens");
    seen[id] = true;
    // (tokenizer.json's reader keeps every entry of the vocab object as it reads it, so a key written
    // twice reaches here twice; a JSON DOM would have kept the last.)
    if (m.vocab_.find(tok) >= 0) return Status::error("vocab token '" + tok + "' appears twice");
    m.tokens_[id] = tok;
    m.vocab_.insert(tok, id);
  }
  m.byte_ids_.fill(-1);
  if (byte_level) {
    // Tokens outside the byte-level alphabet can never come out of byte-level BPE; they stay decodable only.
    std::string raw;
    for (const auto& [tok, id] : spec.vocab) {
      raw.clear();
      if (byte_level_decode(tok, raw)) m.raw_vocab_.insert(raw, id);
    }
    for (int b = 0; b < 256; ++b) {
      const char one = static_cast<char>(b);
      m.byte_ids_[b] = m.raw_vocab_.find(std::string_view(&one, 1));
    }
  } else {
    for (const auto& [tok, id] : spec.vocab) m.raw_vocab_.insert(tok, id);
    if (spec.byte_fallback) {
      for (int b = 0; b < 256; ++b) {
        char name[8];
        std::snprintf(name, sizeof(name), "<0x%02X>", b);
        const int32_t id = m.vocab_.find(std::string_view(name));
        if (id < 0) return Status::error(std::string("byte_fallback vocab lacks ") + name);
        m.byte_ids_[b] = id;
      }
    }
  }
  if (spec.unk_token) {
    m.unk_id_ = m.vocab_.find(*spec.unk_token);
    if (m.unk_id_ < 0) return Status::error("unk_token '" + *spec.unk_token + "' is not in the vocab");
  }
  std::vector<std::pair<uint64_t, std::pair<int32_t, int32_t>>> items;
  items.reserve(spec.merges.size());
  std::string joined;
  for (size_t r = 0; r < spec.merges.size(); ++r) {
    const auto& [a, b] = spec.merges[r];
    joined.assign(a).append(b);
    const int32_t ia = m.vocab_.find(a), ib = m.vocab_.find(b), ij = m.vocab_.find(joined);
    if (ia < 0 || ib < 0 || ij < 0)
      return Status::error("merge " + std::to_string(r) + " ('" + a + "' '" + b +
                           "') references a token missing from the vocab");
    items.push_back({MergeTable::key(ia, ib), {static_cast<int32_t>(r), ij}});
  }
  m.merges_.build(items);
  return m;
}

void BpeModel::initial_symbols(std::string_view piece, std::vector<int32_t>& syms) const {
  const auto* p = reinterpret_cast<const uint8_t*>(piece.data());
  if (byte_level_) {
    for (size_t i = 0; i < piece.size(); ++i) {
      const int32_t id = byte_ids_[p[i]];
      if (id >= 0) syms.push_back(id);
      else if (unk_id_ >= 0 && !(fuse_unk_ && !syms.empty() && syms.back() == unk_id_)) syms.push_back(unk_id_);
    }
    return;
  }
  // Character mode: one symbol per UTF-8 character; an invalid byte is a one-byte "character".
  size_t i = 0;
  while (i < piece.size()) {
    size_t len = 0;
    if (utf8_step(p + i, piece.size() - i, &len) != Utf8Step::kComplete) len = 1;
    if (const int32_t id = raw_vocab_.find(piece.substr(i, len)); id >= 0) {
      syms.push_back(id);
    } else if (byte_fallback_) {
      for (size_t k = 0; k < len; ++k) syms.push_back(byte_ids_[p[i + k]]);
    } else if (unk_id_ >= 0 && !(fuse_unk_ && !syms.empty() && syms.back() == unk_id_)) {
      syms.push_back(unk_id_);
    }
    i += len;
  }
}

void BpeModel::merge_small(std::vector<int32_t>& syms) const {
  // ranks[i]: rank of merging syms[i] with syms[i+1] (INT32_MAX: no merge). Lowest rank first, leftmost on ties.
  // merged[i]: the id that merge produces.
  constexpr int32_t kNone = INT32_MAX;
  constexpr size_t kStack = 64;
  int32_t ranks_buf[kStack], merged_buf[kStack];
  std::vector<int32_t> heap_buf;
  int32_t* ranks = ranks_buf;
  int32_t* merged = merged_buf;
  size_t n = syms.size();
  if (n > kStack) {
    heap_buf.resize(2 * n);
    ranks = heap_buf.data();
    merged = heap_buf.data() + n;
  }
  auto set_pair = [&](size_t i) {
    const MergeTable::Entry* e = merges_.find(syms[i], syms[i + 1]);
    ranks[i] = e ? e->rank : kNone;
    merged[i] = e ? e->id : -1;
  };
  for (size_t i = 0; i + 1 < n; ++i) set_pair(i);
  while (n > 1) {
    size_t best = 0;
    for (size_t i = 1; i + 1 < n; ++i)
      if (ranks[i] < ranks[best]) best = i;
    if (ranks[best] == kNone) break;
    syms[best] = merged[best];
    for (size_t i = best + 1; i + 1 < n; ++i) syms[i] = syms[i + 1];
    for (size_t i = best + 1; i + 2 < n; ++i) ranks[i] = ranks[i + 1], merged[i] = merged[i + 1];
    --n;
    if (best + 1 < n) set_pair(best);
    if (best > 0) set_pair(best - 1);
  }
  syms.resize(n);
}

void BpeModel::merge_heap(std::vector<int32_t>& syms) const {
  // Doubly linked symbols; candidates (rank, left position) in a min-heap; stale entries are skipped on pop.
  const int32_t n = static_cast<int32_t>(syms.size());
  std::vector<int32_t> prev(n), next(n);
  std::vector<bool> alive(n, true);
  for (int32_t i = 0; i < n; ++i) prev[i] = i - 1, next[i] = i + 1 < n ? i + 1 : -1;
  struct Cand {
    int32_t rank, pos, id;
    bool operator>(const Cand& o) const { return rank != o.rank ? rank > o.rank : pos > o.pos; }
  };
  std::priority_queue<Cand, std::vector<Cand>, std::greater<Cand>> heap;
  auto push = [&](int32_t l) {
    if (l < 0 || next[l] < 0) return;
    if (const MergeTable::Entry* e = merges_.find(syms[l], syms[next[l]])) heap.push({e->rank, l, e->id});
  };
  for (int32_t i = 0; i + 1 < n; ++i) push(i);
  while (!heap.empty()) {
    const Cand c = heap.top();
    heap.pop();
    if (!alive[c.pos] || next[c.pos] < 0) continue;
    const MergeTable::Entry* e = merges_.find(syms[c.pos], syms[next[c.pos]]);
    if (!e || e->id != c.id || e->rank != c.rank) continue;  // the pair changed since it was queued
    const int32_t r = next[c.pos];
    syms[c.pos] = c.id;
    alive[r] = false;
    next[c.pos] = next[r];
    if (next[r] >= 0) prev[next[r]] = c.pos;
    push(prev[c.pos]);
    push(c.pos);
  }
  size_t w = 0;
  for (int32_t i = 0; i < n; ++i)
    if (alive[i]) syms[w++] = syms[i];
  syms.resize(w);
}

void BpeModel::encode(std::string_view piece, std::vector<int32_t>& out, BpeScratch& scratch) const {
  if (piece.empty()) return;
  const uint64_t h = hash_bytes(piece);
  if (ignore_merges_) {
    if (const int32_t id = raw_vocab_.find(piece, h); id >= 0) {
      out.push_back(id);
      return;
    }
  }
  const bool cacheable = piece.size() <= BpeScratch::kMaxWordBytes;
  if (cacheable) {
    if (const int32_t k = scratch.cache.find(piece, h); k >= 0) {
      const auto [off, cnt] = scratch.spans[k];
      out.insert(out.end(), scratch.ids.begin() + off, scratch.ids.begin() + off + cnt);
      return;
    }
  }
  std::vector<int32_t>& syms = scratch.syms;
  syms.clear();
  initial_symbols(piece, syms);
  if (syms.size() <= 256) merge_small(syms);
  else merge_heap(syms);
  out.insert(out.end(), syms.begin(), syms.end());
  if (cacheable && scratch.spans.size() < BpeScratch::kMaxEntries) {
    scratch.cache.insert(piece, static_cast<int32_t>(scratch.spans.size()));
    scratch.spans.emplace_back(static_cast<uint32_t>(scratch.ids.size()), static_cast<uint32_t>(syms.size()));
    scratch.ids.insert(scratch.ids.end(), syms.begin(), syms.end());
  }
}

}  // namespace tern::tok
