#include <gtest/gtest.h>

#include "model/sequence_kv_cache.h"

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
  for (int l = 0; l < 2; ++l) {
    for (int i = 0; i < 10 * 8; ++i) kv.k(l)[i] = float(l * 1000 + i), kv.v(l)[i] = -float(i);
  }
  kv.set_length(10);
  ASSERT_TRUE(kv.reserve(5000).is_ok());
  EXPECT_GE(kv.bytes(), size_t(2) * 2 * 5000 * 8 * sizeof(float));
  for (int l = 0; l < 2; ++l) {
    for (int i = 0; i < 10 * 8; ++i) {
      ASSERT_EQ(kv.k(l)[i], float(l * 1000 + i));
      ASSERT_EQ(kv.v(l)[i], -float(i));
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
