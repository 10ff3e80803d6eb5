#include "model/tp_shard.h"

#include <fmt/format.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cstring>

namespace tern {

namespace {

// Drops the pages of [p, p + bytes) from this process's resident set (a read-only file mapping:
// they stay in the page cache and fault back in if touched again, so this is always safe).
void release_pages(const void* p, size_t bytes) {
  const uintptr_t page = uintptr_t(sysconf(_SC_PAGESIZE));
  const uintptr_t begin = (uintptr_t(p) + page - 1) & ~(page - 1), end = (uintptr_t(p) + bytes) & ~(page - 1);
  if (end > begin) madvise(reinterpret_cast<void*>(begin), end - begin, MADV_DONTNEED);
}

std::vector<float> slice(const std::vector<float>& v, int64_t b, int64_t n) {
  if (v.empty()) return {};
  return std::vector<float>(v.begin() + b, v.begin() + b + n);
}

Status check_dense(const WeightMatrix& w, int layer, const char* name) {
  if (!w.data || w.dense()) return Status::ok();
  return Status::error(fmt::format("tensor parallelism: layer {} {} is stored quantized; only dense (f32, f16, "
                                   "bf16) weights can be split so far",
                                   layer, name));
}

}  // namespace

WeightMatrix row_slice(const WeightMatrix& w, int64_t r0, int64_t n) {
  WeightMatrix s = w;
  s.data = w.row(r0);
  s.rows = n;
  return s;
}

WeightMatrix column_slice(const WeightMatrix& w, int64_t c0, int64_t n, WeightArena& arena) {
  const size_t es = dtype_size(w.dtype);
  auto* dst = static_cast<char*>(arena.allocate(size_t(w.rows) * size_t(n) * es));
  for (int64_t r = 0; r < w.rows; ++r) {
    std::memcpy(dst + size_t(r) * size_t(n) * es, static_cast<const char*>(w.row(r)) + size_t(c0) * es, size_t(n) * es);
  }
  release_pages(w.data, w.bytes());
  WeightMatrix s = w;
  s.data = dst;
  s.cols = n;
  return s;
}

Result<TransformerWeights> shard_weights(const TransformerWeights& full, const ModelConfig& cfg, const TpLayout& t,
                                         WeightArena& arena) {
  TransformerWeights w;
  w.embed = full.embed;  // replicated: a lookup gathers only the rows of the ids it sees
  w.embed_scale = full.embed_scale;
  w.pos_embed = full.pos_embed;
  w.final_norm = full.final_norm;
  w.final_logit_softcap = full.final_logit_softcap;
  const int64_t hd = cfg.head_dim;
  const int64_t q0 = t.head0 * hd, qn = t.heads * hd, k0 = t.kv_head0 * hd, kn = t.kv_heads * hd;
  w.layers.resize(full.layers.size());
  for (size_t i = 0; i < full.layers.size(); ++i) {
    const DecoderLayerWeights& f = full.layers[i];
    DecoderLayerWeights& l = w.layers[i];
    if (f.moe || f.mla) return Status::error("tensor parallelism: MoE and MLA layers are not supported yet");
    const int li = int(i);
    for (auto [m, name] : {std::pair{&f.attn.q, "q"}, {&f.attn.k, "k"}, {&f.attn.v, "v"}, {&f.attn.o, "o"},
                           {&f.mlp.gate, "gate"}, {&f.mlp.up, "up"}, {&f.mlp.down, "down"}}) {
      TERN_RETURN_IF_ERROR(check_dense(*m, li, name));
    }
    l.attn_norm = f.attn_norm, l.attn_out_norm = f.attn_out_norm, l.ffn_norm = f.ffn_norm, l.ffn_out_norm = f.ffn_out_norm;
    // Attention: this rank's query heads and their KV heads; o [hidden, q_dim] by the same columns.
    l.attn = f.attn;
    l.attn.q = row_slice(f.attn.q, q0, qn);
    l.attn.k = row_slice(f.attn.k, k0, kn);
    l.attn.v = row_slice(f.attn.v, k0, kn);
    l.attn.q_bias = slice(f.attn.q_bias, q0, qn);
    l.attn.k_bias = slice(f.attn.k_bias, k0, kn);
    l.attn.v_bias = slice(f.attn.v_bias, k0, kn);
    l.attn.o = column_slice(f.attn.o, q0, qn, arena);
    if (t.rank != 0) l.attn.o_bias.clear();
    // Feed-forward: gate/up [inter/T, hidden] rows, down [hidden, inter/T] columns.
    l.mlp = f.mlp;
    const int64_t i0 = t.inter.begin, in = t.inter.size();
    if (f.mlp.gate.data) l.mlp.gate = row_slice(f.mlp.gate, i0, in);
    l.mlp.up = row_slice(f.mlp.up, i0, in);
    l.mlp.up_bias = slice(f.mlp.up_bias, i0, in);
    l.mlp.down = column_slice(f.mlp.down, i0, in, arena);
    if (t.rank != 0) l.mlp.down_bias.clear();
  }
  if (!full.lm_head.dense()) return Status::error("tensor parallelism: the LM head is stored quantized; only a dense one can be split so far");
  w.lm_head = row_slice(full.lm_head, t.vocab.begin, t.vocab.size());
  return w;
}

}  // namespace tern
