// Expert parallelism (issue 17): one rank of E holds the routed experts split_range(n_experts, E, r)
// of every mixture-of-experts layer; everything else (attention, dense layers, router, shared
// experts, embedding, norms) is replicated. The other experts are left absent (ExpertMlp rows 0, so
// MoeBlock skips them) and their pages released from this process, so a rank's resident memory is
// the replicated part plus 1/E of the routed experts.
//
// With tensor parallelism (--tp T --ep E, T·E ranks, world rank = group·T + tp rank): the E groups of
// T ranks each hold split_range(n_experts, E, group) of the experts, each expert (and the attention,
// dense layers and shared expert) cut T ways inside the group as under --tp alone (model/tp_shard.h).
#pragma once

#include "core/status.h"
#include "formats/model_config.h"
#include "model/transformer_weights.h"
#include "parallel/tp_layout.h"

namespace tern {

// Errors: a model without MoE layers, fewer routed experts than ranks.
Result<TpRange> ep_expert_range(const ModelConfig& cfg, int rank, int size);

// `full` with only the experts in `mine` kept in each MoE layer; keep_shared false: the shared
// expert dropped too (--tp T --ep E: only the first expert group adds its tensor-parallel part of the
// shared expert, before the one all-reduce over all T·E ranks).
TransformerWeights ep_shard(const TransformerWeights& full, TpRange mine, bool keep_shared = true);

}  // namespace tern
