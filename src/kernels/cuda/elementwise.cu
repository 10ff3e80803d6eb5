// Row-wise and element-wise kernels: RMSNorm(+residual), RoPE, SwiGLU, embedding gather, bias,
// conversions, argmax. Memory-bound: one block per row, coalesced f32 accesses.
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cfloat>

#include "kernels/cuda/cuda_kernels.h"

namespace tern::cuda {
namespace {

constexpr int kRowThreads = 256;

__device__ float block_sum(float v, float* sh) {
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  if (lane == 0) sh[warp] = v;
  __syncthreads();
  v = threadIdx.x < blockDim.x / 32 ? sh[threadIdx.x] : 0.f;
  if (warp == 0) {
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    if (lane == 0) sh[0] = v;
  }
  __syncthreads();
  const float r = sh[0];
  __syncthreads();
  return r;
}

// grid: [m], block: kRowThreads. x: [m, d].
__global__ void rms_norm_kernel(float* x, const float* residual, int64_t d, const float* w, float eps, float* out) {
  __shared__ float sh[32];
  float* xr = x + blockIdx.x * d;
  const float* rr = residual ? residual + blockIdx.x * d : nullptr;
  float ss = 0.f;
  for (int64_t j = threadIdx.x; j < d; j += blockDim.x) {
    float v = xr[j];
    if (rr) {
      v += rr[j];
      xr[j] = v;
    }
    ss += v * v;
  }
  const float inv = rsqrtf(block_sum(ss, sh) / float(d) + eps);
  float* o = out + blockIdx.x * d;
  for (int64_t j = threadIdx.x; j < d; j += blockDim.x) o[j] = xr[j] * inv * w[j];
}

// grid: [m, n_heads], block: rotary_dim / 2 threads (<= 512).
__global__ void rope_kernel(float* x, int n_heads, int head_dim, int rotary_dim, const int32_t* pos,
                            const float* inv_freq) {
  const int half = rotary_dim / 2, j = threadIdx.x;
  if (j >= half) return;
  float* h = x + (int64_t(blockIdx.x) * n_heads + blockIdx.y) * head_dim;
  // Same fp32 angle as the CPU path (float(inv_freq) * float(pos)); precise sincosf, not __sinf.
  const float ang = inv_freq[j] * float(pos[blockIdx.x]);
  float sn, cs;
  sincosf(ang, &sn, &cs);
  const float a = h[j], b = h[j + half];
  h[j] = a * cs - b * sn;
  h[j + half] = b * cs + a * sn;
}

__global__ void swiglu_kernel(const float* g, const float* u, int64_t n, float* out) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
    const float x = g[i];
    out[i] = x / (1.f + expf(-x)) * u[i];
  }
}

__device__ float load_dense(const void* p, DenseType t, int64_t i) {
  switch (t) {
    case DenseType::BF16: return __bfloat162float(static_cast<const __nv_bfloat16*>(p)[i]);
    case DenseType::F16: return __half2float(static_cast<const __half*>(p)[i]);
    default: return static_cast<const float*>(p)[i];
  }
}

__global__ void embedding_kernel(const void* table, DenseType t, const int32_t* ids, int64_t d, float* out) {
  const int64_t base = int64_t(ids[blockIdx.x]) * d;
  for (int64_t j = threadIdx.x; j < d; j += blockDim.x) out[blockIdx.x * d + j] = load_dense(table, t, base + j);
}

__global__ void add_bias_kernel(float* x, const float* b, int64_t n) {
  for (int64_t j = threadIdx.x; j < n; j += blockDim.x) x[blockIdx.x * n + j] += b[j];
}

__global__ void add_kernel(float* x, const float* y, int64_t n) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x)
    x[i] += y[i];
}

__global__ void to_bf16_kernel(const void* in, DenseType t, int64_t n, __nv_bfloat16* out) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x)
    out[i] = __float2bfloat16_rn(load_dense(in, t, i));
}

__global__ void gather_kernel(const float* rows, const int32_t* idx, int64_t d, float* out) {
  const float* src = rows + int64_t(idx[blockIdx.x]) * d;
  for (int64_t j = threadIdx.x; j < d; j += blockDim.x) out[blockIdx.x * d + j] = src[j];
}

// grid: [m], block: kRowThreads. Ties go to the lowest index.
__global__ void argmax_kernel(const float* logits, int64_t n, int32_t* out) {
  __shared__ float sv[kRowThreads];
  __shared__ int32_t si[kRowThreads];
  const float* r = logits + blockIdx.x * n;
  float best = -FLT_MAX;
  int32_t bi = 0x7fffffff;
  for (int64_t j = threadIdx.x; j < n; j += blockDim.x) {
    if (r[j] > best) best = r[j], bi = int32_t(j);
  }
  sv[threadIdx.x] = best;
  si[threadIdx.x] = bi;
  __syncthreads();
  for (int o = blockDim.x / 2; o > 0; o >>= 1) {
    if (threadIdx.x < o) {
      const float v = sv[threadIdx.x + o];
      const int32_t i = si[threadIdx.x + o];
      if (v > sv[threadIdx.x] || (v == sv[threadIdx.x] && i < si[threadIdx.x])) sv[threadIdx.x] = v, si[threadIdx.x] = i;
    }
    __syncthreads();
  }
  if (threadIdx.x == 0) out[blockIdx.x] = si[0] == 0x7fffffff ? 0 : si[0];
}

int grid_for(int64_t n) {
  const int64_t g = (n + 255) / 256;
  return int(g < 4096 ? (g < 1 ? 1 : g) : 4096);
}

}  // namespace

cudaError_t rms_norm(float* x, const float* residual, int64_t m, int64_t d, const float* w, float eps, float* out,
                     cudaStream_t s) {
  if (m == 0) return cudaSuccess;
  rms_norm_kernel<<<unsigned(m), kRowThreads, 0, s>>>(x, residual, d, w, eps, out);
  return cudaGetLastError();
}

cudaError_t rope(float* x, int64_t m, int n_heads, int head_dim, int rotary_dim, const int32_t* positions,
                 const float* inv_freq, cudaStream_t s) {
  if (m == 0) return cudaSuccess;
  const int half = rotary_dim / 2;
  rope_kernel<<<dim3(unsigned(m), unsigned(n_heads)), unsigned((half + 31) / 32 * 32), 0, s>>>(
      x, n_heads, head_dim, rotary_dim, positions, inv_freq);
  return cudaGetLastError();
}

cudaError_t swiglu(const float* gate, const float* up, int64_t n, float* out, cudaStream_t s) {
  if (n == 0) return cudaSuccess;
  swiglu_kernel<<<grid_for(n), 256, 0, s>>>(gate, up, n, out);
  return cudaGetLastError();
}

cudaError_t embedding(const void* table, DenseType type, const int32_t* ids, int64_t m, int64_t d, float* out,
                      cudaStream_t s) {
  if (m == 0) return cudaSuccess;
  embedding_kernel<<<unsigned(m), kRowThreads, 0, s>>>(table, type, ids, d, out);
  return cudaGetLastError();
}

cudaError_t add_bias(float* x, const float* bias, int64_t m, int64_t n, cudaStream_t s) {
  if (m == 0) return cudaSuccess;
  add_bias_kernel<<<unsigned(m), kRowThreads, 0, s>>>(x, bias, n);
  return cudaGetLastError();
}

cudaError_t add_inplace(float* x, const float* y, int64_t n, cudaStream_t s) {
  if (n == 0) return cudaSuccess;
  add_kernel<<<grid_for(n), 256, 0, s>>>(x, y, n);
  return cudaGetLastError();
}

cudaError_t to_bf16(const void* in, DenseType type, int64_t n, uint16_t* out, cudaStream_t s) {
  if (n == 0) return cudaSuccess;
  to_bf16_kernel<<<grid_for(n), 256, 0, s>>>(in, type, n, reinterpret_cast<__nv_bfloat16*>(out));
  return cudaGetLastError();
}

cudaError_t gather_rows(const float* rows, const int32_t* idx, int64_t r, int64_t d, float* out, cudaStream_t s) {
  if (r == 0) return cudaSuccess;
  gather_kernel<<<unsigned(r), kRowThreads, 0, s>>>(rows, idx, d, out);
  return cudaGetLastError();
}

cudaError_t argmax_rows(const float* logits, int64_t m, int64_t n, int32_t* out, cudaStream_t s) {
  if (m == 0) return cudaSuccess;
  argmax_kernel<<<unsigned(m), kRowThreads, 0, s>>>(logits, n, out);
  return cudaGetLastError();
}

}  // namespace tern::cuda
