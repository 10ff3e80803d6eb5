#include "parallel/tp_layout.h"

#include <fmt/format.h>

namespace tern {

TpRange split_range(int64_t n, int parts, int p) {
  return {p * n / parts, (p + 1) * n / parts};
}

Result<TpLayout> tp_layout(const ModelConfig& cfg, int rank, int size) {
  if (size < 1 || rank < 0 || rank >= size) return Status::error(fmt::format("rank {} of {} is not a rank", rank, size));
  const int T = size, nh = cfg.n_heads, nkv = cfg.n_kv_heads;
  if (nh <= 0 || nkv <= 0 || nh % nkv != 0) return Status::error("tensor parallelism: config.json heads are inconsistent");
  if (nh % T != 0) {
    return Status::error(fmt::format("--tp {}: config.json num_attention_heads = {} is not a multiple of {}", T, nh, T));
  }
  TpLayout t;
  t.rank = rank;
  t.size = T;
  t.heads = nh / T;
  t.head0 = rank * t.heads;
  if (cfg.mla.enabled()) {
    // No KV heads: one latent row per token, held whole by every rank (kv/kv_layout.h).
    t.kv_heads = t.heads;
    t.kv_head0 = t.head0;
  } else if (nkv % T == 0) {
    t.kv_heads = nkv / T;
    t.kv_head0 = rank * t.kv_heads;
  } else if (T % nkv == 0) {
    t.kv_heads = 1;
    t.kv_head0 = t.head0 / (nh / nkv);  // the KV head of this rank's query heads
    t.kv_replicated = true;
  } else {
    return Status::error(fmt::format("--tp {}: config.json num_key_value_heads = {} neither divides by {} nor divides it",
                                     T, nkv, T));
  }
  t.inter = split_range(cfg.intermediate_size, T, rank);
  t.vocab = split_range(cfg.vocab_size, T, rank);
  t.vocab_stride = (cfg.vocab_size + T - 1) / T;
  if (cfg.moe.enabled()) {
    t.expert_inter = split_range(cfg.moe.expert_intermediate, T, rank);
    if (t.expert_inter.size() <= 0) {
      return Status::error(fmt::format("--tp {}: config.json moe_intermediate_size = {} is too small to split {} ways", T,
                                       cfg.moe.expert_intermediate, T));
    }
    if (cfg.moe.shared_intermediate > 0) {
      t.shared_inter = split_range(cfg.moe.shared_intermediate, T, rank);
      if (t.shared_inter.size() <= 0) {
        return Status::error(fmt::format("--tp {}: the shared expert's {} columns are too few to split {} ways", T,
                                         cfg.moe.shared_intermediate, T));
      }
    }
  }
  if (t.inter.size() <= 0 || t.vocab.size() <= 0) {
    return Status::error(fmt::format("--tp {}: the model is too small to split {} ways", T, T));
  }
  return t;
}

ModelConfig tp_local_config(const ModelConfig& cfg, const TpLayout& t) {
  ModelConfig c = cfg;
  c.n_heads = t.heads;
  c.n_kv_heads = t.kv_heads;
  c.intermediate_size = t.inter.size();
  if (c.moe.enabled()) {
    c.moe.expert_intermediate = t.expert_inter.size();
    if (c.moe.shared_intermediate > 0) c.moe.shared_intermediate = t.shared_inter.size();
  }
  return c;
}

}  // namespace tern
