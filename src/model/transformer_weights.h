// The weights of a decoder-only transformer, bound from a checkpoint: per layer, the blocks the
// decoder composes (model/blocks/), each carrying the variations its architecture chose when the
// weights were bound (DESIGN.md principles 4, 5). Matrices point into the mmap (or the model's
// arena when rewritten at load); small vectors (norms, biases) are f32 copies; empty = absent.
//
// Per layer the decoder computes
//   h = x + [attn_out_norm](attention(attn_norm(x)))      attention, or MLA when `mla` is set
//   x = h + [ffn_out_norm](feed_forward(ffn_norm(h)))     the dense mlp, or MoE when `moe` is set
#pragma once

#include <memory>
#include <vector>

#include "core/weight_matrix.h"
#include "model/blocks/attention.h"
#include "model/blocks/feed_forward.h"
#include "model/blocks/norm.h"

namespace tern {

// Defined by their own blocks (model/blocks/moe.h, model/blocks/mla_attention.h); a layer that
// holds one uses it instead of the dense feed-forward / attention.
struct MoeWeights;
struct MlaWeights;

struct DecoderLayerWeights {
  NormWeights attn_norm;      // [hidden] before attention (HF input_layernorm)
  AttentionWeights attn;
  NormWeights attn_out_norm;  // [hidden] on the attention output, before the residual add (gemma2
                              // post_attention_layernorm, glm4 post_self_attn_layernorm); absent = none
  NormWeights ffn_norm;       // [hidden] before the feed-forward (llama post_attention_layernorm)
  FeedForwardWeights mlp;
  NormWeights ffn_out_norm;   // [hidden] on the feed-forward output (gemma2 post_feedforward_layernorm,
                              // glm4 post_mlp_layernorm); absent = none
  std::shared_ptr<const MoeWeights> moe;  // set: the feed-forward is a mixture of experts
  std::shared_ptr<const MlaWeights> mla;  // set: the attention is multi-head latent attention
};

struct TransformerWeights {
  WeightMatrix embed;      // [vocab, hidden]
  float embed_scale = 1.f; // x = embed[id] · embed_scale (gemma: √hidden in the checkpoint dtype)
  WeightMatrix pos_embed;  // [max_positions, hidden] learned absolute positions (gpt2 wpe); data null = none
  std::vector<DecoderLayerWeights> layers;
  NormWeights final_norm;  // [hidden]
  WeightMatrix lm_head;    // [vocab, hidden]; the same storage as embed when tied
  float final_logit_softcap = 0.f;  // logits → tanh(l / cap) · cap (gemma2); 0 = off
};

}  // namespace tern
