#include "parallel/tp_layout.h"

#include <fmt/format.h>

namespace tern {

TpRange split_range(int64_t n, int parts, int p) {
  return {p * n / parts, (p + 1) * n / parts};
}

Result<TpLayout> tp_layout(const ModelConfig& cfg, int rank, int size) {
  if (size < 1 || rank < 0 || rank >= size) return Status::error(fmt::format("rank {} of {} is not a rank", rank, size));
  if (cfg.mla.enabled()) return Status::error("tensor parallelism: multi-head latent attention (DeepSeek) is not supported yet");
  if (cfg.moe.enabled()) return Status::error("tensor parallelism: mixture-of-experts layers are not supported under --tp yet (use --ep to spread the experts over ranks)");
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
  if (nkv % T == 0) {
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
  return c;
}

}  // namespace tern
