// Parameter and byte accounting of a model from its shape: how many weights each part has, how
// many one token uses (MoE routes each token through experts_per_token of n_experts), and how
// many bytes a decode step streams at a given precision.
#pragma once

#include <cstdint>

#include "parallel/pp_split.h"
#include "plan/model_shape.h"
#include "plan/precision.h"

namespace tern::plan {

struct ParamCounts {
  int64_t embedding = 0;       // token embedding (+ learned positions)
  int64_t lm_head = 0;         // 0 when tied to the embedding
  int64_t attention = 0;       // q/k/v/o (or MLA's projections), their biases and q/k norms
  int64_t dense_mlp = 0;       // MLPs of dense layers
  int64_t routed_experts = 0;  // every routed expert of every MoE layer
  int64_t shared_experts = 0;  // always-on experts (+ Qwen's shared-expert gate)
  int64_t routers = 0;
  int64_t norms = 0;           // layer norms, final norm

  int64_t total() const {
    return embedding + lm_head + attention + dense_mlp + routed_experts + shared_experts + routers + norms;
  }
  int64_t active = 0;  // used by one token: total minus the routed experts it does not visit
};

ParamCounts count_params(const ModelShape& s);

struct WeightBytes {
  double total = 0;           // everything stored
  double embedding = 0;       // the gathered table (not streamed per token unless tied)
  double dense_stream = 0;    // read once per decode step whatever the batch: attention, dense MLP,
                              // shared experts, routers, norms, lm_head (the tied table, as LM head)
  double per_expert = 0;      // one routed expert of one layer
  int moe_layers = 0;
  double tp_replicated = 0;   // of dense_stream: held and read whole by every tensor-parallel rank
                              // (norms, biases, routers, MLA's q_a and kv_a_proj_with_mqa)
  // Bytes a decode step of `batch` tokens streams: the dense part plus every expert the batch
  // visits (n × (1 − (1 − k/n)^batch) distinct experts per layer, for uniform routing).
  double streamed(int64_t batch, int n_experts, int experts_per_token) const;
};

WeightBytes weight_bytes(const ModelShape& s, const WeightPrecision& p);

// What each layer weighs at the precision and, on the last stage, the final norm and the LM head as
// decode streams it: the input of the pipeline split, parallel/pp_layout.h's pp_split_layers, the
// function the engine splits its stages with (one front door; the engine weighs its bound weights).
PpStageBytes pp_stage_bytes(const ModelShape& s, const WeightPrecision& p);

// Matrix FLOPs per token (2 per multiply-add) of one forward, routed experts counted for the
// experts the token visits; lm_head separately since prefill needs it once per sequence.
struct TokenFlops {
  double matrices = 0;  // without lm_head
  double lm_head = 0;
  // Attention score + weighted-sum FLOPs of one token attending to `context` cached tokens.
  double attention_per_context_token = 0;
};
TokenFlops token_flops(const ModelShape& s);

}  // namespace tern::plan
