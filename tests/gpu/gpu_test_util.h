// Shared by the GPU tests: skip without a device, device buffers, random data.
#pragma once

#include <gtest/gtest.h>

#include <random>
#include <vector>

#include "backend/cuda/device.h"

#if TERN_HAVE_CUDA
#include <cuda_runtime_api.h>
#endif

// Every GPU test starts with this: a clean skip on machines without a GPU (CI, this host).
#define TERN_REQUIRE_CUDA()                                                        \
  do {                                                                             \
    auto tern_dev_ = ::tern::cuda::probe_device(0);                                \
    if (!tern_dev_.is_ok()) GTEST_SKIP() << tern_dev_.status().message();          \
  } while (0)

namespace tern::test {

inline std::vector<float> random_vec(size_t n, uint32_t seed, float lo = -1.f, float hi = 1.f) {
  std::mt19937 g(seed);
  std::uniform_real_distribution<float> d(lo, hi);
  std::vector<float> v(n);
  for (auto& x : v) x = d(g);
  return v;
}

#if TERN_HAVE_CUDA
// A device copy of a host vector (and back); freed with the object.
template <typename T>
class DevBuf {
 public:
  explicit DevBuf(size_t n) : n_(n) { EXPECT_EQ(cudaMalloc(&p_, n * sizeof(T) + 16), cudaSuccess); }
  explicit DevBuf(const std::vector<T>& h) : DevBuf(h.size()) {
    EXPECT_EQ(cudaMemcpy(p_, h.data(), h.size() * sizeof(T), cudaMemcpyHostToDevice), cudaSuccess);
  }
  ~DevBuf() { cudaFree(p_); }
  DevBuf(const DevBuf&) = delete;
  T* get() const { return static_cast<T*>(p_); }
  std::vector<T> host() const {
    std::vector<T> h(n_);
    EXPECT_EQ(cudaDeviceSynchronize(), cudaSuccess);
    EXPECT_EQ(cudaMemcpy(h.data(), p_, n_ * sizeof(T), cudaMemcpyDeviceToHost), cudaSuccess);
    return h;
  }

 private:
  void* p_ = nullptr;
  size_t n_;
};
#endif

}  // namespace tern::test
