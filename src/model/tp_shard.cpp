#include "model/tp_shard.h"

#include <fmt/format.h>

#include <memory>
#include <numeric>

#include "model/blocks/mla_attention.h"
#include "model/blocks/moe.h"

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

// One MLA layer cut to this rank's heads (parallel/tp_layout.h). H = t.heads local heads from
// h0 = t.head0; N, P, V, R as in model/blocks/mla_attention.h:
//   q_b [H·(N+P), q_lora] (or q_proj [H·(N+P), hidden]) and kv_b [H·(N+V), R]: the heads' rows (views);
//   o [hidden, H·V]: the heads' value columns (a copy);  q_a, kv_a and their norms: replicated;
//   the absorbed w_uk_t [H, R, N] and w_uv [H, V, R]: the heads' contiguous blocks.
template <class Keep, class Rows, class Cols>
Result<std::shared_ptr<const MlaWeights>> shard_mla(const MlaWeights& f, const ModelConfig& cfg, const TpLayout& t,
                                                     int layer, Keep& keep, Rows& rows, Cols& cols) {
  const MlaConfig& m = cfg.mla;
  const int64_t N = m.qk_nope_head_dim, P = m.qk_rope_head_dim, V = m.v_head_dim, R = m.kv_lora_rank;
  const int64_t h0 = t.head0, nh = t.heads;
  for (auto [w, name] : {std::pair{&f.q, "q"}, {&f.q_a, "q_a"}, {&f.q_b, "q_b"}, {&f.kv_a, "kv_a"},
                         {&f.kv_b, "kv_b"}, {&f.o, "o"}}) {
    TERN_RETURN_IF_ERROR(check_cuttable(*w, layer, name));
  }
  TERN_RETURN_IF_ERROR(check_columns(f.o, h0 * V, nh * V, layer, "o"));
  auto w = std::make_shared<MlaWeights>();
  if (f.q_a.data) {
    w->q_a = keep(f.q_a);
    w->q_a_norm = f.q_a_norm;
    w->q_a_bias = f.q_a_bias;
    w->q_b = rows(f.q_b, h0 * (N + P), nh * (N + P));
  } else {
    w->q = rows(f.q, h0 * (N + P), nh * (N + P));
  }
  w->kv_a = keep(f.kv_a);
  w->kv_a_norm = f.kv_a_norm;
  w->kv_a_bias = f.kv_a_bias;
  w->kv_b = rows(f.kv_b, h0 * (N + V), nh * (N + V));
  w->o = cols(f.o, h0 * V, nh * V);
  if (t.rank == 0) w->o_bias = f.o_bias;  // added once, to the sum
  w->w_uk_t.assign(f.w_uk_t.begin() + h0 * R * N, f.w_uk_t.begin() + (h0 + nh) * R * N);
  w->w_uv.assign(f.w_uv.begin() + h0 * V * R, f.w_uv.begin() + (h0 + nh) * V * R);
  return std::shared_ptr<const MlaWeights>(std::move(w));
}

}  // namespace

Result<TpLayout> tp_align_layout(const TpLayout& t, const TransformerWeights& full, const ModelConfig& cfg) {
  TpLayout a = t;
  // The least common multiple of the column blocks of every down projection cut by one split.
  struct Split {
    const char* what;     // for errors: "down_proj", "experts' down_proj", ...
    const char* field;    // the config.json field the width comes from
    int64_t width;
    TpRange* range;
    int64_t align = 1;
  };
  Split splits[] = {{"down_proj", "intermediate_size", cfg.intermediate_size, &a.inter},
                    {"experts' down_proj", "moe_intermediate_size", cfg.moe.expert_intermediate, &a.expert_inter},
                    {"shared expert's down_proj", "the shared expert's width", cfg.moe.shared_intermediate,
                     &a.shared_inter}};
  auto add = [](Split& s, const WeightMatrix& d, size_t layer) -> Status {
    if (!d.data) return Status::ok();
    const int64_t blk = column_block(d);
    if (blk == 0) {
      return Status::error(fmt::format("tensor parallelism: layer {} {} ({}) cannot be split by columns", layer,
                                       s.what, weight_format_name(d)));
    }
    s.align = std::lcm(s.align, blk);
    return Status::ok();
  };
  for (size_t i = 0; i < full.layers.size(); ++i) {
    const DecoderLayerWeights& l = full.layers[i];
    TERN_RETURN_IF_ERROR(add(splits[0], l.mlp.down, i));
    if (!l.moe) continue;
    // Experts this rank does not hold (expert parallelism) are absent: nothing to align.
    for (const ExpertMlp& e : l.moe->experts) TERN_RETURN_IF_ERROR(add(splits[1], e.down, i));
    TERN_RETURN_IF_ERROR(add(splits[2], l.moe->shared.down, i));
  }
  for (Split& s : splits) {
    if (s.align <= 1 || s.width <= 0) continue;
    if (s.width % s.align != 0 || s.width / s.align < t.size) {
      return Status::error(fmt::format("--tp {}: config.json {} = {} does not split into {} parts of whole {}-column "
                                       "blocks ({})",
                                       t.size, s.field, s.width, t.size, s.align, s.what));
    }
    const TpRange b = split_range(s.width / s.align, t.size, t.rank);
    *s.range = {b.begin * s.align, b.end * s.align};
  }
  const int64_t hd = cfg.head_dim;
  for (size_t i = 0; i < full.layers.size(); ++i) {
    const DecoderLayerWeights& l = full.layers[i];
    if (l.mla) {
      const int64_t V = cfg.mla.v_head_dim;
      TERN_RETURN_IF_ERROR(check_columns(l.mla->o, t.head0 * V, t.heads * V, int(i), "o"));
    } else {
      TERN_RETURN_IF_ERROR(check_columns(l.attn.o, t.head0 * hd, t.heads * hd, int(i), "o"));
    }
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
  // A SwiGLU MLP (an expert) cut to intermediate columns r: gate/up [r, hidden] rows, down [hidden, r] columns.
  auto cut_mlp = [&](const ExpertMlp& e, TpRange r, int li, const char* name) -> Result<ExpertMlp> {
    for (const WeightMatrix* m : {&e.gate, &e.up, &e.down}) TERN_RETURN_IF_ERROR(check_cuttable(*m, li, name));
    TERN_RETURN_IF_ERROR(check_columns(e.down, r.begin, r.size(), li, name));
    ExpertMlp x;
    x.gate = rows(e.gate, r.begin, r.size());
    x.up = rows(e.up, r.begin, r.size());
    x.down = cols(e.down, r.begin, r.size());
    return x;
  };
  w.layers.resize(full.layers.size());
  for (size_t i = 0; i < full.layers.size(); ++i) {
    const DecoderLayerWeights& f = full.layers[i];
    DecoderLayerWeights& l = w.layers[i];
    const int li = int(i);
    l.attn_norm = f.attn_norm, l.attn_out_norm = f.attn_out_norm, l.ffn_norm = f.ffn_norm, l.ffn_out_norm = f.ffn_out_norm;
    if (f.mla) {
      TERN_ASSIGN_OR_RETURN(l.mla, shard_mla(*f.mla, cfg, t, li, keep, rows, cols));
    } else {
      for (auto [m, name] : {std::pair{&f.attn.q, "q"}, {&f.attn.k, "k"}, {&f.attn.v, "v"}, {&f.attn.o, "o"}}) {
        TERN_RETURN_IF_ERROR(check_cuttable(*m, li, name));
      }
      TERN_RETURN_IF_ERROR(check_columns(f.attn.o, q0, qn, li, "o"));
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
    }
    if (f.moe) {
      // Router (and Qwen2-MoE's shared-expert gate) replicated: every rank routes every row alike.
      // Each expert's slice gives its part of weight · expert(x); absent experts (another expert-
      // parallel group's) stay absent.
      const MoeWeights& fm = *f.moe;
      auto moe = std::make_shared<MoeWeights>();
      moe->router = keep(fm.router);
      moe->router_bias = fm.router_bias;
      moe->shared_gate = keep(fm.shared_gate);
      moe->experts.resize(fm.experts.size());
      for (size_t e = 0; e < fm.experts.size(); ++e) {
        if (!fm.experts[e].present()) continue;
        TERN_ASSIGN_OR_RETURN(moe->experts[e], cut_mlp(fm.experts[e], t.expert_inter, li, "experts' down"));
      }
      if (fm.shared.present()) {
        TERN_ASSIGN_OR_RETURN(moe->shared, cut_mlp(fm.shared, t.shared_inter, li, "shared expert's down"));
      }
      l.moe = std::move(moe);
      continue;
    }
    for (auto [m, name] : {std::pair{&f.mlp.gate, "gate"}, {&f.mlp.up, "up"}, {&f.mlp.down, "down"}}) {
      TERN_RETURN_IF_ERROR(check_cuttable(*m, li, name));
    }
    TERN_RETURN_IF_ERROR(check_columns(f.mlp.down, i0, in, li, "down"));
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
