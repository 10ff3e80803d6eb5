// The weights of a decoder-only transformer in the Llama family, bound from a checkpoint.
// Matrices point into the mmap; small vectors (norms, biases) are f32 copies.
// Empty vectors mean "absent" (no bias, no q/k norm).
#pragma once

#include <vector>

#include "core/weight_matrix.h"

namespace tern {

struct AttentionWeights {
  WeightMatrix q, k, v, o;                 // q: [n_heads*hd, hidden], k/v: [n_kv*hd, hidden], o: [hidden, n_heads*hd]
  std::vector<float> q_bias, k_bias, v_bias;  // qwen2
  std::vector<float> q_norm, k_norm;          // qwen3: RMSNorm over each head, [hd]
  int sliding_window = 0;                     // 0 = full causal
};

struct MlpWeights {
  WeightMatrix gate, up, down;  // gate/up: [inter, hidden], down: [hidden, inter]
};

struct DecoderLayerWeights {
  std::vector<float> input_norm;      // [hidden]
  std::vector<float> post_attn_norm;  // [hidden]
  AttentionWeights attn;
  MlpWeights mlp;
};

struct TransformerWeights {
  WeightMatrix embed;  // [vocab, hidden]
  std::vector<DecoderLayerWeights> layers;
  std::vector<float> final_norm;  // [hidden]
  WeightMatrix lm_head;           // [vocab, hidden]; the same storage as embed when tied
};

}  // namespace tern
