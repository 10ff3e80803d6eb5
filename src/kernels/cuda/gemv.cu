// Decode GEMV: y[b, n] = x[b, :] · W[n, :] for b = 1..8 tokens, W in bf16 / int8 / int4-group / fp8.
// Memory-bound on W: one warp per output row, each lane streams 16 bytes of W per step (8 bf16 or
// 16 int8/fp8 or 32 int4 codes) so the warp reads 512 contiguous bytes; x ([B, k] f32, small) comes
// through L1. Each weight element is decoded once and used for all B tokens (B accumulators/lane).
#include <cuda_bf16.h>
#include <cuda_fp8.h>

#include "kernels/cuda/cuda_kernels.h"

namespace tern::cuda {
namespace {

constexpr int kWarps = 4;

__device__ __forceinline__ float warp_sum(float v) {
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}

__device__ __forceinline__ float bf16_lo(uint32_t u) { return __uint_as_float(u << 16); }
__device__ __forceinline__ float bf16_hi(uint32_t u) { return __uint_as_float(u & 0xffff0000u); }

__device__ __forceinline__ float fp8_to_f32(uint8_t b) {
  __nv_fp8_e4m3 f;
  f.__x = b;
  return float(f);
}

// Dot of 8 weights w[0..7] with x rows at column c, into acc[B].
template <int B>
__device__ __forceinline__ void fma8(const float (&w)[8], const float* x, int64_t k, int64_t c, float (&acc)[B]) {
#pragma unroll
  for (int b = 0; b < B; ++b) {
    const float4 x0 = *reinterpret_cast<const float4*>(x + b * k + c);
    const float4 x1 = *reinterpret_cast<const float4*>(x + b * k + c + 4);
    acc[b] += w[0] * x0.x + w[1] * x0.y + w[2] * x0.z + w[3] * x0.w + w[4] * x1.x + w[5] * x1.y + w[6] * x1.z +
              w[7] * x1.w;
  }
}

template <int B>
__global__ void __launch_bounds__(kWarps * 32) gemv_kernel(GemvWeight w, const float* __restrict__ x,
                                                          const float* __restrict__ bias, float* __restrict__ y) {
  const int lane = threadIdx.x % 32;
  const int64_t r = int64_t(blockIdx.x) * kWarps + threadIdx.x / 32;
  if (r >= w.n) return;
  const int64_t k = w.k;
  float acc[B];
#pragma unroll
  for (int b = 0; b < B; ++b) acc[b] = 0.f;

  if (w.kind == GemvWeight::BF16) {
    const uint4* row = reinterpret_cast<const uint4*>(static_cast<const uint16_t*>(w.data) + r * k);
    for (int64_t i = lane; i < k / 8; i += 32) {
      const uint4 u = __ldg(row + i);
      const float wv[8] = {bf16_lo(u.x), bf16_hi(u.x), bf16_lo(u.y), bf16_hi(u.y),
                           bf16_lo(u.z), bf16_hi(u.z), bf16_lo(u.w), bf16_hi(u.w)};
      fma8<B>(wv, x, k, i * 8, acc);
    }
  } else if (w.kind == GemvWeight::INT8 || w.kind == GemvWeight::FP8) {
    const bool fp8 = w.kind == GemvWeight::FP8;
    const uint2* row = reinterpret_cast<const uint2*>(static_cast<const uint8_t*>(w.data) + r * k);
    for (int64_t i = lane; i < k / 8; i += 32) {
      const uint2 u = __ldg(row + i);
      float wv[8];
#pragma unroll
      for (int j = 0; j < 8; ++j) {
        const uint8_t byte = uint8_t(((j < 4 ? u.x : u.y) >> (8 * (j % 4))) & 0xff);
        wv[j] = fp8 ? fp8_to_f32(byte) : float(int8_t(byte));
      }
      fma8<B>(wv, x, k, i * 8, acc);
    }
#pragma unroll
    for (int b = 0; b < B; ++b) acc[b] *= w.scales[r];
  } else {  // INT4: 32-column blocks of 16 bytes; byte j = col j (low nibble) | col j + 16 (high nibble)
    const uint4* row = reinterpret_cast<const uint4*>(static_cast<const uint8_t*>(w.data) + r * (k / 2));
    const int64_t ng = k / w.group;
    for (int64_t blk = lane; blk < k / 32; blk += 32) {
      const uint4 u = __ldg(row + blk);
      const int64_t g = blk * 32 / w.group;
      const float sc = w.scales[r * ng + g];
      const float z = w.zeros ? w.zeros[r * ng + g] : 8.f;
      const uint32_t words[4] = {u.x, u.y, u.z, u.w};
      float lo[8], hi[8];
#pragma unroll
      for (int half = 0; half < 2; ++half) {  // bytes 0..7 then 8..15
#pragma unroll
        for (int j = 0; j < 8; ++j) {
          const uint32_t byte = (words[half * 2 + j / 4] >> (8 * (j % 4))) & 0xff;
          lo[j] = sc * (float(byte & 0xf) - z);
          hi[j] = sc * (float(byte >> 4) - z);
        }
        fma8<B>(lo, x, k, blk * 32 + half * 8, acc);
        fma8<B>(hi, x, k, blk * 32 + 16 + half * 8, acc);
      }
    }
  }
#pragma unroll
  for (int b = 0; b < B; ++b) {
    const float v = warp_sum(acc[b]);
    if (lane == 0) y[b * w.n + r] = v + (bias ? bias[r] : 0.f);
  }
}

template <int B>
cudaError_t launch(const GemvWeight& w, const float* x, const float* bias, float* y, cudaStream_t s) {
  const unsigned grid = unsigned((w.n + kWarps - 1) / kWarps);
  gemv_kernel<B><<<grid, kWarps * 32, 0, s>>>(w, x, bias, y);
  return cudaGetLastError();
}

}  // namespace

cudaError_t gemv(const GemvWeight& w, const float* x, int64_t batch, const float* bias, float* y, cudaStream_t s) {
  switch (batch) {
    case 0: return cudaSuccess;
    case 1: return launch<1>(w, x, bias, y, s);
    case 2: return launch<2>(w, x, bias, y, s);
    case 3: return launch<3>(w, x, bias, y, s);
    case 4: return launch<4>(w, x, bias, y, s);
    case 5: return launch<5>(w, x, bias, y, s);
    case 6: return launch<6>(w, x, bias, y, s);
    case 7: return launch<7>(w, x, bias, y, s);
    case 8: return launch<8>(w, x, bias, y, s);
    default: return cudaErrorInvalidValue;
  }
}

}  // namespace tern::cuda
