#include <gtest/gtest.h>

#include "kv/sequence_kv_cache.h"

namespace tern {
namespace {

ModelConfig small_config() {
  ModelConfig c;
  c.n_layers = 2;
  c.n_kv_heads = 2;
  c.head_dim = 4;
  return c;
}

TEST(SequenceKvCache, GrowsOnDemandAndKeepsRows) {
  SequenceKvCache kv(small_config(), 100000);
  EXPECT_EQ(kv.bytes(), 0u) << "nothing is allocated before it is needed";
  ASSERT_TRUE(kv.reserve(10).is_ok());
  const CpuFeatures cpu = CpuFeatures::detect();
  std::vector<float> k(10 * 8), v(10 * 8);
  for (int l = 0; l < 2; ++l) {
    for (int i = 0; i < 10 * 8; ++i) k[size_t(i)] = float(l * 1000 + i), v[size_t(i)] = -float(i);
    kv.pool().write(cpu, l, kv.block_table(), 0, 10, k.data(), v.data());
  }
  kv.set_length(10);
  ASSERT_TRUE(kv.reserve(5000).is_ok());
  EXPECT_GE(kv.bytes(), size_t(2) * 2 * 5000 * 8 * sizeof(float));
  EXPECT_GE(kv.n_blocks() * SequenceKvCache::kBlockSize, 5000);
  float row[4];
  for (int l = 0; l < 2; ++l) {
    for (int t = 0; t < 10; ++t)
      for (int g = 0; g < 2; ++g) {
        kv.pool().read_row(l, false, kv.block_table(), t, g, row);
        for (int d = 0; d < 4; ++d) ASSERT_EQ(row[d], float(l * 1000 + t * 8 + g * 4 + d));
        kv.pool().read_row(l, true, kv.block_table(), t, g, row);
        for (int d = 0; d < 4; ++d) ASSERT_EQ(row[d], -float(t * 8 + g * 4 + d));
      }
  }
}

TEST(SequenceKvCache, RefusesMoreThanItsLimit) {
  SequenceKvCache kv(small_config(), 64);
  EXPECT_TRUE(kv.reserve(64).is_ok());
  Status s = kv.reserve(65);
  ASSERT_FALSE(s.is_ok());
  EXPECT_NE(s.message().find("65"), std::string::npos);
  EXPECT_NE(s.message().find("64"), std::string::npos);
}

}  // namespace
}  // namespace tern
