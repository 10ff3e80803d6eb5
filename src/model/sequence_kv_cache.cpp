#include "model/sequence_kv_cache.h"

#include <fmt/format.h>

#include <algorithm>

namespace tern {

SequenceKvCache::SequenceKvCache(const ModelConfig& cfg, int64_t max_tokens)
    : row_(int64_t(cfg.n_kv_heads) * cfg.head_dim), max_tokens_(max_tokens) {
  k_.resize(size_t(cfg.n_layers));
  v_.resize(size_t(cfg.n_layers));
}

Status SequenceKvCache::reserve(int64_t tokens) {
  if (tokens > max_tokens_) {
    return Status::error(fmt::format("sequence of {} tokens does not fit the KV cache ({} tokens)", tokens, max_tokens_));
  }
  if (tokens <= allocated_) return Status::ok();
  const int64_t grown = std::min(max_tokens_, std::max({tokens, allocated_ * 2, int64_t(256)}));
  for (size_t l = 0; l < k_.size(); ++l) {
    k_[l].resize(size_t(grown * row_));
    v_[l].resize(size_t(grown * row_));
  }
  allocated_ = grown;
  return Status::ok();
}

}  // namespace tern
