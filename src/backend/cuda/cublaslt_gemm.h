// Prefill GEMM through cuBLASLt: y[m, n] (f32) = x[m, k] (bf16) · W[n, k]ᵀ (bf16), fp32 accumulate.
// W is nn.Linear's row-major [out, in]; in cuBLAS' column-major terms that is Yᵀ = op_T(W) · Xᵀ.
// The handle and the workspace are created once; gemm() only enqueues (graph-capturable).
#pragma once

#include <cstddef>
#include <cstdint>

#include "core/status.h"

#if TERN_HAVE_CUDA
#include <cuda_runtime_api.h>

#include "backend/cuda/cublaslt_library.h"

namespace tern::cuda {

class LtGemm {
 public:
  LtGemm() = default;
  ~LtGemm();
  LtGemm(const LtGemm&) = delete;
  LtGemm& operator=(const LtGemm&) = delete;

  Status init(void* workspace, size_t workspace_bytes);
  // x: [m, k] bf16, w: [n, k] bf16, y: [m, n] f32 (y = x·Wᵀ, or y += x·Wᵀ with accumulate).
  Status gemm(const uint16_t* x, const uint16_t* w, float* y, int64_t m, int64_t n, int64_t k, bool accumulate,
              cudaStream_t s);

 private:
  CublasLtLibrary lt_;  // declared first: destroyed after the handle
  void* handle_ = nullptr;
  void* workspace_ = nullptr;
  size_t workspace_bytes_ = 0;
};

}  // namespace tern::cuda
#endif
