// Shared by the op unit tests: run an op under every ISA level the host supports and with 1 or 2
// threads, and a deterministic random source.
#pragma once

#include <gtest/gtest.h>

#include <random>
#include <string>
#include <tuple>
#include <vector>

#include "core/cpu_features.h"
#include "core/dtype.h"
#include "core/thread_pool.h"
#include "core/exec_context.h"

namespace tern::test {

// Levels a CpuFeatures::capped() understands, lowest first. "avx512" only runs on hosts that have it.
inline const std::vector<std::string>& isa_levels() {
  static const std::vector<std::string> levels = {"scalar", "avx2", "avx512"};
  return levels;
}

// True (and the test skipped) when the host cannot run `level`.
inline bool host_lacks(const std::string& level) {
  const CpuFeatures f = CpuFeatures::detect();
  if (level == "avx2") return !f.avx2;
  if (level == "avx512") return !f.avx512;
  return false;
}

struct IsaThreads : public ::testing::TestWithParam<std::tuple<std::string, int>> {
  void SetUp() override {
    if (host_lacks(level())) GTEST_SKIP() << "host CPU lacks " << level() << " (" << CpuFeatures::detect().describe() << ")";
    pool = std::make_unique<ThreadPool>(threads());
    ctx = std::make_unique<ExecContext>(*pool, CpuFeatures::detect().capped(level()));
  }
  std::string level() const { return std::get<0>(GetParam()); }
  int threads() const { return std::get<1>(GetParam()); }
  std::unique_ptr<ThreadPool> pool;
  std::unique_ptr<ExecContext> ctx;
};

inline std::string isa_threads_name(const ::testing::TestParamInfo<std::tuple<std::string, int>>& info) {
  return std::get<0>(info.param) + "_t" + std::to_string(std::get<1>(info.param));
}

#define TERN_INSTANTIATE_ISA_THREADS(suite)                                                                  \
  INSTANTIATE_TEST_SUITE_P(Isa, suite,                                                                       \
                           ::testing::Combine(::testing::ValuesIn(::tern::test::isa_levels()), ::testing::Values(1, 2)), \
                           ::tern::test::isa_threads_name)

inline std::vector<float> random_floats(size_t n, float lo, float hi, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> dist(lo, hi);
  std::vector<float> v(n);
  for (auto& x : v) x = dist(rng);
  return v;
}

// n bf16 values, uniform in [-1, 1) before rounding.
inline std::vector<uint16_t> random_bf16(size_t n, uint32_t seed) {
  const std::vector<float> f = random_floats(n, -1.f, 1.f, seed);
  std::vector<uint16_t> v(n);
  for (size_t i = 0; i < n; ++i) v[i] = f32_to_bf16(f[i]);
  return v;
}

}  // namespace tern::test
