// The mixture-of-experts part of config.json, for the families that spell it differently:
//   Mixtral      num_local_experts, num_experts_per_tok, intermediate_size (= each expert's width);
//                softmax over all experts, top-k, always renormalised; every layer is MoE.
//   Qwen2-MoE    num_experts, num_experts_per_tok, moe_intermediate_size, norm_topk_prob (default
//                false), shared_expert_intermediate_size (one shared expert whose output is scaled by
//                sigmoid(x · shared_expert_gate)), decoder_sparse_step, mlp_only_layers.
//   Qwen3-MoE    the same names (transformers 5 writes num_local_experts), no shared expert.
//   DeepSeek-V3  n_routed_experts, num_experts_per_tok, moe_intermediate_size, n_shared_experts
//                (a plain MLP of n_shared_experts × moe_intermediate_size), sigmoid scores whose
//                choice adds e_score_correction_bias (topk_method "noaux_tc"), group-limited top-k
//                (n_group, topk_group), norm_topk_prob, routed_scaling_factor,
//                first_k_dense_replace dense layers first.
// Layers that are not MoE layers keep the dense MLP of width intermediate_size.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/status.h"

namespace tern {

class ConfigFields;

enum class MoeScoring : uint8_t {
  kSoftmax,  // softmax over all experts' logits (Mixtral, Qwen-MoE)
  kSigmoid,  // sigmoid per expert (DeepSeek-V3)
};

struct MoeConfig {
  int n_experts = 0;                 // routed experts; 0 = a dense model
  int top_k = 0;                     // experts per token
  int64_t expert_intermediate = 0;   // width of each routed expert's SwiGLU
  int64_t shared_intermediate = 0;   // width of the shared expert MLP run on every token; 0 = none
  bool shared_expert_gate = false;   // Qwen2-MoE: shared output × sigmoid(x · g), g: [1, hidden]
  MoeScoring scoring = MoeScoring::kSoftmax;
  bool norm_topk_prob = false;       // divide the k chosen weights by their sum
  bool correction_bias = false;      // DeepSeek noaux_tc: choose by score + e_score_correction_bias
  int n_group = 1;                   // experts fall into n_group equal groups ...
  int topk_group = 1;                // ... and only the topk_group best groups may be chosen
  double routed_scaling_factor = 1;  // multiplies the routed experts' weights (after normalising)
  // Which layers are MoE layers: see is_moe_layer.
  int first_k_dense = 0;             // DeepSeek first_k_dense_replace
  int sparse_step = 1;               // Qwen decoder_sparse_step: (layer + 1) % step == 0
  std::vector<int> mlp_only_layers;  // Qwen: always dense

  bool enabled() const { return n_experts > 0; }
  // Whether decoder layer `layer` (0-based) has the MoE block instead of the dense MLP.
  bool is_moe_layer(int layer) const;
  int n_moe_layers(int n_layers) const;
};

// Reads the MoE fields of the family `model_type` names (mixtral, qwen2_moe, qwen3_moe,
// deepseek_v3); other model types leave *out disabled. Errors name the file and the field:
// num_experts_per_tok above the expert count, n_group not dividing the experts, topk_group above
// n_group, an unknown scoring_func / topk_method, mlp_only_layers outside the layers, ...
Status parse_moe_config(const ConfigFields& f, const std::string& model_type, int n_layers, MoeConfig* out);

}  // namespace tern
