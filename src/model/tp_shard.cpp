#include "model/tp_shard.h"

#include <fmt/format.h>

#include <numeric>

namespace tern {

namespace {

std::vector<float> slice(const std::vector<float>& v, int64_t b, int64_t n) {
  if (v.empty()) return {};
  return std::vector<float>(v.begin() + b, v.begin() + b + n);
}

Status check_cuttable(const WeightMatrix& w, int layer, const char* name) {
  if (!w.data || w.format != WeightFormat::SparseBitmask) return Status::ok();
  return Status::error(fmt::format("tensor parallelism: layer {} {} is stored sparse (bitmask); sparse weights "
                                   "cannot be split yet",
                                   layer, name));
}

// A column range [c0, c0 + n) of layer `layer`'s `name` that misses the format's blocks.
Status check_columns(const WeightMatrix& w, int64_t c0, int64_t n, int layer, const char* name) {
  const int64_t blk = column_block(w);
  if (blk == 0) {
    return Status::error(fmt::format("tensor parallelism: layer {} {}_proj ({}) cannot be split by columns", layer,
                                     name, weight_format_name(w)));
  }
  if (c0 % blk != 0 || n % blk != 0) {
    return Status::error(fmt::format("tensor parallelism: layer {} {}_proj ({}): the split at columns [{}, {}) is "
                                     "not on its {}-column blocks",
                                     layer, name, weight_format_name(w), c0, c0 + n, blk));
  }
  return Status::ok();
}

}  // namespace

Result<TpLayout> tp_align_layout(const TpLayout& t, const TransformerWeights& full, const ModelConfig& cfg) {
  TpLayout a = t;
  int64_t align = 1;
  for (size_t i = 0; i < full.layers.size(); ++i) {
    const WeightMatrix& d = full.layers[i].mlp.down;
    if (!d.data) continue;
    const int64_t blk = column_block(d);
    if (blk == 0) {
      return Status::error(fmt::format("tensor parallelism: layer {} down_proj ({}) cannot be split by columns", i,
                                       weight_format_name(d)));
    }
    align = std::lcm(align, blk);
  }
  const int64_t inter = cfg.intermediate_size;
  if (align > 1) {
    if (inter % align != 0 || inter / align < t.size) {
      return Status::error(fmt::format("--tp {}: config.json intermediate_size = {} does not split into {} parts of "
                                       "whole {}-column blocks (down_proj)",
                                       t.size, inter, t.size, align));
    }
    const TpRange b = split_range(inter / align, t.size, t.rank);
    a.inter = {b.begin * align, b.end * align};
  }
  const int64_t hd = cfg.head_dim;
  for (size_t i = 0; i < full.layers.size(); ++i) {
    TERN_RETURN_IF_ERROR(check_columns(full.layers[i].attn.o, t.head0 * hd, t.heads * hd, int(i), "o"));
  }
  return a;
}

Result<TransformerWeights> shard_weights(const TransformerWeights& full, const ModelConfig& cfg, const TpLayout& t,
                                         WeightArena& arena, const WeightArena* bind_arena) {
  // What the rank keeps of a matrix the binder repacked into bind_arena is copied out of it.
  auto keep = [&](const WeightMatrix& w) {
    return bind_arena && w.data && bind_arena->owns(w.data) ? copy_matrix(w, arena) : w;
  };
  auto rows = [&](const WeightMatrix& w, int64_t r0, int64_t n) { return keep(row_slice(w, r0, n)); };
  // A column slice is a copy; the source's pages then leave this process when they are the
  // checkpoint's read-only file mapping (dense safetensors, GGUF): they refault from the file if read.
  auto cols = [&](const WeightMatrix& w, int64_t c0, int64_t n) {
    WeightMatrix s = column_slice(w, c0, n, arena);
    if (!(bind_arena && bind_arena->owns(w.data))) release_pages(w.data, data_bytes(w));
    return s;
  };
  TransformerWeights w;
  w.embed = keep(full.embed);  // replicated: a lookup gathers only the rows of the ids it sees
  w.embed_scale = full.embed_scale;
  w.pos_embed = keep(full.pos_embed);
  w.final_norm = full.final_norm;
  w.final_logit_softcap = full.final_logit_softcap;
  const int64_t hd = cfg.head_dim;
  const int64_t q0 = t.head0 * hd, qn = t.heads * hd, k0 = t.kv_head0 * hd, kn = t.kv_heads * hd;
  const int64_t i0 = t.inter.begin, in = t.inter.size();
  w.layers.resize(full.layers.size());
  for (size_t i = 0; i < full.layers.size(); ++i) {
    const DecoderLayerWeights& f = full.layers[i];
    DecoderLayerWeights& l = w.layers[i];
    if (f.moe || f.mla) return Status::error("tensor parallelism: MoE and MLA layers are not supported yet");
    const int li = int(i);
    for (auto [m, name] : {std::pair{&f.attn.q, "q"}, {&f.attn.k, "k"}, {&f.attn.v, "v"}, {&f.attn.o, "o"},
                           {&f.mlp.gate, "gate"}, {&f.mlp.up, "up"}, {&f.mlp.down, "down"}}) {
      TERN_RETURN_IF_ERROR(check_cuttable(*m, li, name));
    }
    TERN_RETURN_IF_ERROR(check_columns(f.attn.o, q0, qn, li, "o"));
    TERN_RETURN_IF_ERROR(check_columns(f.mlp.down, i0, in, li, "down"));
    l.attn_norm = f.attn_norm, l.attn_out_norm = f.attn_out_norm, l.ffn_norm = f.ffn_norm, l.ffn_out_norm = f.ffn_out_norm;
    // Attention: this rank's query heads and their KV heads; o [hidden, q_dim] by the same columns.
    l.attn = f.attn;
    l.attn.q = rows(f.attn.q, q0, qn);
    l.attn.k = rows(f.attn.k, k0, kn);
    l.attn.v = rows(f.attn.v, k0, kn);
    l.attn.q_bias = slice(f.attn.q_bias, q0, qn);
    l.attn.k_bias = slice(f.attn.k_bias, k0, kn);
    l.attn.v_bias = slice(f.attn.v_bias, k0, kn);
    l.attn.o = cols(f.attn.o, q0, qn);
    if (t.rank != 0) l.attn.o_bias.clear();
    // Feed-forward: gate/up [inter/T, hidden] rows, down [hidden, inter/T] columns.
    l.mlp = f.mlp;
    if (f.mlp.gate.data) l.mlp.gate = rows(f.mlp.gate, i0, in);
    l.mlp.up = rows(f.mlp.up, i0, in);
    l.mlp.up_bias = slice(f.mlp.up_bias, i0, in);
    l.mlp.down = cols(f.mlp.down, i0, in);
    if (t.rank != 0) l.mlp.down_bias.clear();
  }
  if (full.lm_head.format == WeightFormat::SparseBitmask) {
    return Status::error("tensor parallelism: the LM head is stored sparse (bitmask); it cannot be split yet");
  }
  w.lm_head = rows(full.lm_head, t.vocab.begin, t.vocab.size());
  return w;
}

}  // namespace tern
