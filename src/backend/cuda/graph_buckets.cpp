#include "backend/cuda/graph_buckets.h"

#include <algorithm>

namespace tern::cuda {

std::vector<int64_t> decode_graph_buckets(int64_t max_batch) {
  std::vector<int64_t> b;
  for (int64_t v : {1, 2, 4, 8}) {
    if (v <= max_batch) b.push_back(v);
  }
  int64_t v = 8;
  while (v < max_batch) {
    const bool pow2 = (v & (v - 1)) == 0;
    v = std::min(max_batch, pow2 ? v * 3 / 2 : v * 4 / 3);  // 12 16 24 32 48 64 96 128 ...
    b.push_back(v);
  }
  if (max_batch > 0 && (b.empty() || b.back() != max_batch)) b.push_back(max_batch);
  return b;
}

int choose_graph_bucket(const std::vector<int64_t>& buckets, int64_t n) {
  if (n <= 0) return -1;
  auto it = std::lower_bound(buckets.begin(), buckets.end(), n);
  return it == buckets.end() ? -1 : int(it - buckets.begin());
}

int decode_attention_splits(int64_t bucket, int n_heads, int sm_count, int64_t max_context, int64_t min_keys) {
  const int64_t warps = std::max<int64_t>(1, bucket * n_heads);
  const int64_t want = (int64_t(std::max(sm_count, 1)) * 4 * 4 + warps - 1) / warps;  // 4 blocks x 4 warps per SM
  const int64_t cap = std::max<int64_t>(1, max_context / std::max<int64_t>(min_keys, 1));
  return int(std::clamp<int64_t>(std::min(want, cap), 1, 64));
}

}  // namespace tern::cuda
