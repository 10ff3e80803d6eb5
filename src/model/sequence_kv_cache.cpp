#include "model/sequence_kv_cache.h"

namespace tern {

SequenceKvCache::SequenceKvCache(const ModelConfig& cfg, int64_t capacity)
    : row_(int64_t(cfg.n_kv_heads) * cfg.head_dim), capacity_(capacity) {
  k_.resize(size_t(cfg.n_layers));
  v_.resize(size_t(cfg.n_layers));
  for (int l = 0; l < cfg.n_layers; ++l) {
    k_[size_t(l)].resize(size_t(capacity * row_));
    v_[size_t(l)].resize(size_t(capacity * row_));
  }
}

}  // namespace tern
