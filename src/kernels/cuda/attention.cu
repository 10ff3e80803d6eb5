// Paged attention over the engine's block tables, for prefill chunks and decode alike: every new
// token attends to its own sequence's cached keys (causal, optional sliding window), with GQA.
// Each (token, head, split) is one warp holding q and its accumulator in registers (hd / 32 values
// per lane) and running the online softmax over its share of the keys; a second kernel merges the
// splits (flash-decoding: decode steps use several splits so that long contexts fill the GPU).
// The KV cache is bf16: k/v [num_blocks, block_size, n_kv, hd].
#include <cuda_bf16.h>
#include <cfloat>

#include "kernels/cuda/cuda_kernels.h"

namespace tern::cuda {
namespace {

__device__ __forceinline__ float warp_sum(float v) {
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}

// grid: [T, n_kv * hd / 128 rounded up]; writes k/v of token blockIdx.x into its page slot.
__global__ void kv_write_kernel(PagedKv kv, StepTokens st, const float* k, const float* v) {
  const int t = blockIdx.x;
  const int pos = st.pos[t];
  const int blk = st.block_tables[int64_t(st.seq[t]) * st.max_blocks + pos / kv.block_size];
  if (blk < 0) return;
  const int64_t width = int64_t(kv.n_kv_heads) * kv.head_dim;
  const int64_t base = (int64_t(blk) * kv.block_size + pos % kv.block_size) * width;
  for (int64_t j = blockIdx.y * int64_t(blockDim.x) + threadIdx.x; j < width; j += int64_t(gridDim.y) * blockDim.x) {
    reinterpret_cast<__nv_bfloat16*>(kv.k)[base + j] = __float2bfloat16_rn(k[int64_t(t) * width + j]);
    reinterpret_cast<__nv_bfloat16*>(kv.v)[base + j] = __float2bfloat16_rn(v[int64_t(t) * width + j]);
  }
}

// P = head_dim / 32 values per lane. grid: [T, n_heads, n_splits], block: 32.
template <int P>
__global__ void attention_kernel(PagedKv kv, StepTokens st, const float* q, int n_heads, int window, float scale,
                                 int n_splits, float* partial) {
  const int t = blockIdx.x, h = blockIdx.y, sp = blockIdx.z, lane = threadIdx.x;
  const int hd = kv.head_dim, kvh = h / (n_heads / kv.n_kv_heads);
  const int pos = st.pos[t];
  const int32_t* bt = st.block_tables + int64_t(st.seq[t]) * st.max_blocks;
  const int lo0 = window > 0 ? max(0, pos - window + 1) : 0, hi0 = pos + 1;
  const int chunk = (hi0 - lo0 + n_splits - 1) / n_splits;
  const int lo = lo0 + sp * chunk, hi = min(hi0, lo + chunk);

  float qr[P], acc[P];
  const float* qh = q + (int64_t(t) * n_heads + h) * hd + lane * P;
#pragma unroll
  for (int p = 0; p < P; ++p) qr[p] = qh[p] * scale, acc[p] = 0.f;
  float m = -FLT_MAX, l = 0.f;
  const bool padded = bt[0] < 0;
  const int64_t row = int64_t(kv.n_kv_heads) * hd;
  for (int j = padded ? hi : lo; j < hi; ++j) {
    const int64_t off = (int64_t(bt[j / kv.block_size]) * kv.block_size + j % kv.block_size) * row + kvh * hd + lane * P;
    const __nv_bfloat16* kp = reinterpret_cast<const __nv_bfloat16*>(kv.k) + off;
    float d = 0.f;
#pragma unroll
    for (int p = 0; p < P; ++p) d += qr[p] * __bfloat162float(kp[p]);
    d = warp_sum(d);
    const float mn = fmaxf(m, d);
    const float corr = __expf(m - mn), e = __expf(d - mn);
    l = l * corr + e;
    const __nv_bfloat16* vp = reinterpret_cast<const __nv_bfloat16*>(kv.v) + off;
#pragma unroll
    for (int p = 0; p < P; ++p) acc[p] = acc[p] * corr + e * __bfloat162float(vp[p]);
    m = mn;
  }
  // partial: [T, n_heads, n_splits, hd + 2] = unnormalized acc, then m, l.
  float* out = partial + ((int64_t(t) * n_heads + h) * n_splits + sp) * (hd + 2);
#pragma unroll
  for (int p = 0; p < P; ++p) out[lane * P + p] = acc[p];
  if (lane == 0) out[hd] = m, out[hd + 1] = l;
}

// grid: [T, n_heads], block: hd threads. Merges the splits with their max/sum.
__global__ void merge_kernel(const float* partial, int n_splits, int hd, float* out) {
  const int64_t th = int64_t(blockIdx.x) * gridDim.y + blockIdx.y;
  const float* p = partial + th * n_splits * (hd + 2);
  float m = -FLT_MAX;
  for (int s = 0; s < n_splits; ++s) {
    const float* ps = p + s * (hd + 2);
    if (ps[hd + 1] > 0.f) m = fmaxf(m, ps[hd]);
  }
  float l = 0.f, a = 0.f;
  for (int s = 0; s < n_splits; ++s) {
    const float* ps = p + s * (hd + 2);
    if (ps[hd + 1] <= 0.f) continue;
    const float w = __expf(ps[hd] - m);
    l += w * ps[hd + 1];
    a += w * ps[threadIdx.x];
  }
  out[th * hd + threadIdx.x] = l > 0.f ? a / l : 0.f;
}

}  // namespace

cudaError_t kv_write(const PagedKv& kv, const StepTokens& st, const float* k, const float* v, cudaStream_t s) {
  if (st.n_tokens == 0) return cudaSuccess;
  const int64_t width = int64_t(kv.n_kv_heads) * kv.head_dim;
  kv_write_kernel<<<dim3(unsigned(st.n_tokens), unsigned((width + 127) / 128)), 128, 0, s>>>(kv, st, k, v);
  return cudaGetLastError();
}

cudaError_t paged_attention(const PagedKv& kv, const StepTokens& st, const float* q, int n_heads, int window,
                            float scale, int n_splits, float* partial, float* out, cudaStream_t s) {
  if (st.n_tokens == 0) return cudaSuccess;
  const dim3 grid(unsigned(st.n_tokens), unsigned(n_heads), unsigned(n_splits));
  switch (kv.head_dim) {
    case 64: attention_kernel<2><<<grid, 32, 0, s>>>(kv, st, q, n_heads, window, scale, n_splits, partial); break;
    case 128: attention_kernel<4><<<grid, 32, 0, s>>>(kv, st, q, n_heads, window, scale, n_splits, partial); break;
    case 256: attention_kernel<8><<<grid, 32, 0, s>>>(kv, st, q, n_heads, window, scale, n_splits, partial); break;
    case 32: attention_kernel<1><<<grid, 32, 0, s>>>(kv, st, q, n_heads, window, scale, n_splits, partial); break;
    default: return cudaErrorInvalidValue;
  }
  cudaError_t e = cudaGetLastError();
  if (e != cudaSuccess) return e;
  merge_kernel<<<dim3(unsigned(st.n_tokens), unsigned(n_heads)), unsigned(kv.head_dim), 0, s>>>(partial, n_splits,
                                                                                                 kv.head_dim, out);
  return cudaGetLastError();
}

}  // namespace tern::cuda
