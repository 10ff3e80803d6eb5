// KV row codecs: e4m3 conversions against their definition, scalar and AVX2 rows giving the same
// values, the int8 / fp8 error bound relative to the row's own range, and the pool's byte count.
#include <cmath>

#include "kernels/cpu/kv_codec.h"
#include "kv/paged_kv_cache.h"
#include "op_test_util.h"

namespace tern::test {
namespace {

TEST(Fp8E4m3, EveryFiniteCodeRoundTrips) {
  for (int c = 0; c < 256; ++c) {
    if ((c & 0x7f) == 0x7f) continue;  // NaN codes
    const float x = cpu::fp8_e4m3_to_f32(uint8_t(c));
    ASSERT_TRUE(std::isfinite(x));
    const uint8_t back = cpu::f32_to_fp8_e4m3(x);
    if (c == 0x80) {
      EXPECT_EQ(back, 0x80);  // -0 keeps its sign
    } else {
      EXPECT_EQ(int(back), c) << "value " << x;
    }
  }
  EXPECT_EQ(cpu::fp8_e4m3_to_f32(0x7e), 448.f);
  EXPECT_EQ(cpu::fp8_e4m3_to_f32(0x01), std::ldexp(1.f, -9));
  EXPECT_EQ(cpu::f32_to_fp8_e4m3(1e6f), 0x7e) << "saturates, never NaN";
  EXPECT_EQ(cpu::f32_to_fp8_e4m3(-1e6f), 0xfe);
}

TEST(Fp8E4m3, RoundsToNearest) {
  auto values = random_floats(5000, -500.f, 500.f, 3);
  for (float x : values) {
    const float y = cpu::fp8_e4m3_to_f32(cpu::f32_to_fp8_e4m3(x));
    // Neighbouring codes are at most 2^-3 relative apart (above the subnormals); nearest is within half.
    if (std::fabs(x) <= 448.f && std::fabs(x) > 0.02f) EXPECT_LE(std::fabs(y - x), std::fabs(x) / 16.f + 1e-6f) << x;
  }
}

TEST(KvRowCodec, AllIsaLevelsDecodeAlike) {
  const CpuFeatures host = CpuFeatures::detect();
  if (!host.avx2) GTEST_SKIP() << "host CPU lacks avx2: only the scalar codec exists here";
  for (KvDType dt : {KvDType::F32, KvDType::BF16, KvDType::INT8, KvDType::FP8}) {
    const cpu::KvRowCodec a = cpu::kv_row_codec(dt, host.capped("scalar"));
    const cpu::KvRowCodec b = cpu::kv_row_codec(dt, host.capped("avx2"));
    for (int d : {64, 12, 3}) {
      const auto x = random_floats(size_t(d), -3.f, 3.f, uint32_t(d) + 7);
      std::vector<uint8_t> ea(static_cast<size_t>(d) * 4), eb(static_cast<size_t>(d) * 4);
      float sa = 0, sb = 0;
      a.encode(x.data(), d, ea.data(), &sa);
      b.encode(x.data(), d, eb.data(), &sb);
      ASSERT_EQ(ea, eb) << kv_dtype_name(dt) << " d=" << d;
      ASSERT_EQ(sa, sb);
      std::vector<float> ya(static_cast<size_t>(d)), yb(static_cast<size_t>(d));
      a.decode(ea.data(), sa, d, ya.data());
      b.decode(eb.data(), sb, d, yb.data());
      ASSERT_EQ(ya, yb) << kv_dtype_name(dt) << " d=" << d;
      const float amax = 3.f;
      const float tol = dt == KvDType::F32 ? 0.f : dt == KvDType::BF16 ? amax / 256 : dt == KvDType::INT8 ? amax / 254 : amax / 16;
      for (int i = 0; i < d; ++i) EXPECT_LE(std::fabs(ya[size_t(i)] - x[size_t(i)]), tol) << kv_dtype_name(dt);
    }
  }
}

TEST(PagedKvCache, BlockBytesAreExact) {
  ModelConfig cfg;
  cfg.n_layers = 3;
  cfg.n_kv_heads = 4;
  cfg.head_dim = 64;
  // 16 slots × 4 heads × 64 values per part; parts are 64-byte aligned; K and V per layer.
  EXPECT_EQ(PagedKvCache::block_bytes_for(cfg, 16, KvDType::F32), size_t(3 * 2 * 16 * 4 * 64 * 4));
  EXPECT_EQ(PagedKvCache::block_bytes_for(cfg, 16, KvDType::BF16), size_t(3 * 2 * 16 * 4 * 64 * 2));
  EXPECT_EQ(PagedKvCache::block_bytes_for(cfg, 16, KvDType::INT8), size_t(3 * 2 * (16 * 4 * 64 + 16 * 4 * 4)));
  EXPECT_EQ(PagedKvCache::block_bytes_for(cfg, 16, KvDType::FP8), size_t(3 * 2 * (16 * 4 * 64 + 16 * 4 * 4)));
  PagedKvCache pool(cfg, 16, KvDType::INT8);
  ASSERT_TRUE(pool.allocate(10).is_ok());
  EXPECT_EQ(pool.bytes(), 10 * PagedKvCache::block_bytes_for(cfg, 16, KvDType::INT8));
}

}  // namespace
}  // namespace tern::test
