// ModelRunner on one NVIDIA GPU (issue 7): the engine's ragged steps, paged KV and block tables,
// computed by kernels/cuda + cuBLASLt. Weights are uploaded once at construction (one cudaMalloc,
// plus one for the step workspace); allocate_kv takes the KV pool; forward() allocates nothing.
// Decode-only steps (every sequence brings one token) up to max_graph_batch sequences replay a CUDA
// graph captured on first use for their batch-size bucket (backend/cuda/graph_buckets.h).
// Logits are copied back in f32 and sampled by the engine's CPU sampler (a GPU argmax exists in
// kernels/cuda for greedy-only callers).
// This header has no CUDA types, so tools can include it in any build; without TERN_CUDA the
// factory returns "no CUDA device: this tern was built without CUDA".
#pragma once

#include <cstdint>
#include <memory>

#include "core/status.h"
#include "engine/model_runner.h"
#include "model/model.h"

namespace tern {

struct CudaRunnerOptions {
  int device = 0;
  int64_t max_step_tokens = 512;   // rows of the activation workspace; larger steps run in chunks of sequences
  int64_t max_logit_rows = 256;
  int64_t max_graph_batch = 64;    // decode steps with more sequences run eagerly
  bool use_graphs = true;
};

Result<std::unique_ptr<ModelRunner>> make_cuda_model_runner(const Model& model, const CudaRunnerOptions& opt = {});

}  // namespace tern
