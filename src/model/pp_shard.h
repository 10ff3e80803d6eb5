// One pipeline stage's part of a model (parallel/pp_layout.h): the layers [layer0, layer0 + layers)
// of the bound weights, the embedding on the first stage only, the final norm and LM head on the
// last only. Dense layer matrices stay views into the checkpoint mmap, which a stage never touches
// outside its layers, so its resident memory is its layers (plus the embedding rows or LM head).
#pragma once

#include "formats/model_config.h"
#include "model/transformer_weights.h"
#include "parallel/pp_split.h"

namespace tern {

// What each stage of `full` reads per decode step (the split's input, parallel/pp_layout.h): every
// layer's matrices and vectors as bound (quantized formats at their real bytes: GGUF blocks, repacked
// int8 / int4, MLA's absorbed f32 matrices, all of an MoE layer's experts), and on the last stage
// the final norm plus `head_bytes`, the LM head as the last stage will hold it (after --lm-head).
PpStageBytes pp_stage_bytes(const TransformerWeights& full, double head_bytes);

// The stage's layers of `full` (bound for the whole config); the pages of the other layers' dense
// matrices are released from this process (they stay in the page cache).
TransformerWeights pp_stage_layers(const TransformerWeights& full, const PpLayout& p);

// After any tensor-parallel cut: drops what the stage does not run (embedding, final norm, LM head).
void pp_drop_ends(TransformerWeights& w, const PpLayout& p);

// The config the stage's decoder and KV pools see: n_layers = the stage's layers (and their layer_types).
ModelConfig pp_local_config(const ModelConfig& cfg, const PpLayout& p);

}  // namespace tern
