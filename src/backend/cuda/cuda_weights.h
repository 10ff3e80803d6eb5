// A Model's weights resident on the GPU, uploaded once into one device allocation.
// Dense matrices become bf16 (f32/f16 checkpoints are rounded at upload); Int8Channel, Int4Group
// and Fp8E4M3 keep their codes + scales as packed by compress/ (the GEMV reads them directly).
// Norm vectors, biases and RoPE frequencies are f32.
#pragma once

#if TERN_HAVE_CUDA
#include <cstdint>
#include <vector>

#include "core/status.h"
#include "kernels/cuda/cuda_kernels.h"
#include "model/model.h"

namespace tern::cuda {

struct DevLinear {
  GemvWeight w;                  // device pointers
  const float* bias = nullptr;   // [n] or null
  bool dense() const { return w.kind == GemvWeight::BF16; }
};

struct DevLayer {
  const float* input_norm = nullptr;
  const float* post_attn_norm = nullptr;
  const float* q_norm = nullptr;  // qwen3 per-head norms, or null
  const float* k_norm = nullptr;
  DevLinear q, k, v, o, gate, up, down;
  int sliding_window = 0;
};

struct DevWeights {
  const void* embed = nullptr;
  DenseType embed_type = DenseType::BF16;
  DevLinear lm_head;
  const float* final_norm = nullptr;
  const float* inv_freq = nullptr;  // [rotary_dim / 2]
  int rotary_dim = 0;
  std::vector<DevLayer> layers;
  void* base = nullptr;   // the one cudaMalloc
  size_t bytes = 0;

  DevWeights() = default;
  DevWeights(const DevWeights&) = delete;
  DevWeights& operator=(const DevWeights&) = delete;
  ~DevWeights();
};

// Bytes upload_weights will allocate (to check against free device memory first).
Result<size_t> device_weight_bytes(const Model& model);
Status upload_weights(const Model& model, DevWeights& out);

}  // namespace tern::cuda
#endif
