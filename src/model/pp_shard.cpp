#include "model/pp_shard.h"

#include "model/blocks/mla_attention.h"
#include "model/blocks/moe.h"
#include "model/tp_slice.h"

namespace tern {

namespace {

double vec_bytes(const std::vector<float>& v) { return double(v.size() * sizeof(float)); }
double norm_bytes(const NormWeights& n) { return vec_bytes(n.weight) + vec_bytes(n.bias); }
double expert_bytes(const ExpertMlp& e) { return double(e.gate.bytes() + e.up.bytes() + e.down.bytes()); }

double layer_bytes(const DecoderLayerWeights& l) {
  const AttentionWeights& a = l.attn;
  double b = double(a.q.bytes() + a.k.bytes() + a.v.bytes() + a.o.bytes()) + vec_bytes(a.q_bias) + vec_bytes(a.k_bias) +
             vec_bytes(a.v_bias) + vec_bytes(a.o_bias) + norm_bytes(a.q_norm) + norm_bytes(a.k_norm);
  b += double(l.mlp.gate.bytes() + l.mlp.up.bytes() + l.mlp.down.bytes()) + vec_bytes(l.mlp.up_bias) +
       vec_bytes(l.mlp.down_bias);
  b += norm_bytes(l.attn_norm) + norm_bytes(l.attn_out_norm) + norm_bytes(l.ffn_norm) + norm_bytes(l.ffn_out_norm);
  if (const MoeWeights* m = l.moe.get()) {
    b += double(m->router.bytes() + m->shared_gate.bytes()) + vec_bytes(m->router_bias) + expert_bytes(m->shared);
    for (const ExpertMlp& e : m->experts) b += expert_bytes(e);
  }
  if (const MlaWeights* m = l.mla.get()) {
    b += double(m->q.bytes() + m->q_a.bytes() + m->q_b.bytes() + m->kv_a.bytes() + m->kv_b.bytes() + m->o.bytes());
    for (const std::vector<float>* v :
         {&m->q_a_norm, &m->kv_a_norm, &m->q_a_bias, &m->kv_a_bias, &m->o_bias, &m->w_uk_t, &m->w_uv}) {
      b += vec_bytes(*v);
    }
  }
  return b;
}

}  // namespace

PpStageBytes pp_stage_bytes(const TransformerWeights& full, double head_bytes) {
  PpStageBytes b;
  for (const DecoderLayerWeights& l : full.layers) b.layers.push_back(layer_bytes(l));
  b.last = norm_bytes(full.final_norm) + head_bytes;
  return b;
}

TransformerWeights pp_stage_layers(const TransformerWeights& full, const PpLayout& p) {
  TransformerWeights w;
  w.embed = full.embed;
  w.embed_scale = full.embed_scale;
  w.pos_embed = full.pos_embed;
  w.final_norm = full.final_norm;
  w.lm_head = full.lm_head;
  w.final_logit_softcap = full.final_logit_softcap;
  w.layers.assign(full.layers.begin() + p.layer0, full.layers.begin() + p.layer0 + p.layers);
  for (size_t i = 0; i < full.layers.size(); ++i) {
    if (int(i) >= p.layer0 && int(i) < p.layer0 + p.layers) continue;
    const DecoderLayerWeights& l = full.layers[i];
    for (const WeightMatrix* m : {&l.attn.q, &l.attn.k, &l.attn.v, &l.attn.o, &l.mlp.gate, &l.mlp.up, &l.mlp.down}) {
      release_pages(*m);
    }
  }
  return w;
}

void pp_drop_ends(TransformerWeights& w, const PpLayout& p) {
  if (!p.first()) {
    w.embed = {};
    w.pos_embed = {};
  }
  if (!p.last()) {
    w.lm_head = {};
    w.final_norm = {};
  }
}

ModelConfig pp_local_config(const ModelConfig& cfg, const PpLayout& p) {
  ModelConfig c = cfg;
  c.n_layers = p.layers;
  if (!cfg.layer_types.empty()) {
    c.layer_types.assign(cfg.layer_types.begin() + p.layer0, cfg.layer_types.begin() + p.layer0 + p.layers);
  }
  return c;
}

}  // namespace tern
