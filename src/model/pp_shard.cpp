#include "model/pp_shard.h"

#include "model/tp_slice.h"

namespace tern {

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
