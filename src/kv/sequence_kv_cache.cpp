#include "kv/sequence_kv_cache.h"

#include <fmt/format.h>

#include <algorithm>

namespace tern {

SequenceKvCache::SequenceKvCache(const ModelConfig& cfg, int64_t max_tokens, KvDType dtype)
    : pool_(cfg, kBlockSize, dtype), max_tokens_(max_tokens) {}

Status SequenceKvCache::reserve(int64_t tokens) {
  if (tokens > max_tokens_) {
    return Status::error(fmt::format("sequence of {} tokens does not fit the KV cache ({} tokens)", tokens, max_tokens_));
  }
  const int64_t have = pool_.num_blocks() * kBlockSize;
  if (tokens <= have) return Status::ok();
  const int64_t grown = std::min(max_tokens_, std::max({tokens, have * 2, int64_t(256)}));
  const int64_t blocks = (grown + kBlockSize - 1) / kBlockSize;
  TERN_RETURN_IF_ERROR(pool_.allocate(blocks));
  table_.resize(size_t(blocks));
  for (int64_t b = 0; b < blocks; ++b) table_[size_t(b)] = int32_t(b);
  return Status::ok();
}

}  // namespace tern
