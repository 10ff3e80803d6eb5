// The KV cache bytes of one token, as tern's paged pool (src/kv/paged_kv_cache.h) stores them, from
// config.json arithmetic alone: K and V of every KV head (GQA, GPT-2's full heads), or MLA's one
// latent row (kv_lora_rank + qk_rope_head_dim); int8 / fp8 add one f32 scale per stored row (per
// KV head for K and for V; one for MLA's latent). Every layer holds every token, Gemma 2's
// sliding-window layers included (a pool block spans all layers). tests/unit/test_kv_plan_agreement.cpp
// checks these numbers against the pool's allocation for every tiny architecture and synth shape.
#pragma once

#include "plan/model_shape.h"
#include "plan/precision.h"

namespace tern::plan {

double kv_bytes_per_token_layer(const ModelShape& s, const KvPrecision& kv);
double kv_bytes_per_token(const ModelShape& s, const KvPrecision& kv);  // all layers

}  // namespace tern::plan
