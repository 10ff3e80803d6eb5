// Decode steps are replayed from CUDA graphs captured once per batch-size bucket: a step of n
// sequences runs the graph of the smallest bucket >= n, padded (backend/cuda/step_pack.h). Buckets
// are dense at small n, where padding wastes the most, and grow by ~1.5x after 8 (vLLM does alike).
#pragma once

#include <cstdint>
#include <vector>

namespace tern::cuda {

// Ascending bucket sizes up to and including max_batch: 1 2 4 8 12 16 24 32 48 64 96 128 ...
std::vector<int64_t> decode_graph_buckets(int64_t max_batch);
// Index of the smallest bucket >= n, or -1 when n is 0 or above the largest bucket (run eagerly).
int choose_graph_bucket(const std::vector<int64_t>& buckets, int64_t n);
// Flash-decoding splits for a bucket: enough (token, head, split) warps to cover the SMs about
// four times over, each split keeping at least min_keys keys of max_context; in [1, 64].
int decode_attention_splits(int64_t bucket, int n_heads, int sm_count, int64_t max_context, int64_t min_keys = 256);

}  // namespace tern::cuda
