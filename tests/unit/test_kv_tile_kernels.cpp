// The fused K/V tile primitives (decode attention reading the pool's rows in place) of every ISA
// level the host runs, against the scalar reference, for every KV dtype: row blocks of 1..9 query
// rows (the 4 / 2 / 1 register blocks and their remainders), empty and partial key ranges, tiles
// shorter than 64 keys, head dims with a tail past the widest register block. Widening is checked
// exactly on every bf16 sign/exponent pattern and every int8 and finite fp8 code.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <random>

#include "kernels/cpu/attention_kernels.h"
#include "op_test_util.h"

namespace tern::test {
namespace {

struct Level {
  const char* name;
  cpu::KvTileKernels (*make)(KvDType);
  int d_multiple;
};

std::vector<Level> host_levels() {
  const CpuFeatures f = CpuFeatures::detect();
  std::vector<Level> out = {{"scalar", cpu::kv_tile_kernels_scalar, 1}};
  if (f.avx2) out.push_back({"avx2", cpu::kv_tile_kernels_avx2, 8});
  if (f.avx512) out.push_back({"avx512", cpu::kv_tile_kernels_avx512, 16});
  return out;
}

constexpr KvDType kDtypes[] = {KvDType::F32, KvDType::BF16, KvDType::INT8, KvDType::FP8};

// nk rows of head_dim d, encoded by the scalar codec, at a stride of 3 rows (rows of a paged pool
// are never adjacent for one kv head). Row scales come back in `scale`.
struct Rows {
  std::vector<uint8_t> bytes;
  std::vector<const uint8_t*> ptr;
  std::vector<float> scale;
  std::vector<float> raw;  // [nk, d] the stored values widened, scale not applied
};
Rows make_rows(KvDType dt, int nk, int d, uint32_t seed) {
  const cpu::KvRowCodec codec = cpu::kv_row_codec(dt, CpuFeatures{});
  const size_t row = size_t(d) * codec.elem_bytes;
  Rows r;
  r.bytes.resize(row * 3 * size_t(nk) + 64);
  r.scale.assign(size_t(nk), 1.f);
  const auto x = random_floats(size_t(nk) * d, -2.f, 2.f, seed);
  for (int j = 0; j < nk; ++j) {
    uint8_t* at = r.bytes.data() + 3 * row * size_t(j) + 1;  // odd address: unaligned loads
    codec.encode(x.data() + size_t(j) * d, d, at, &r.scale[size_t(j)]);
    r.ptr.push_back(at);
  }
  r.raw.resize(size_t(nk) * d);
  for (int j = 0; j < nk; ++j) codec.decode(r.ptr[size_t(j)], 1.f, d, r.raw.data() + size_t(j) * d);
  return r;
}

// Per-row visible ranges: full, partial, empty (lo == hi == 0), a single key.
void make_ranges(int rows, int nk, uint32_t seed, std::vector<int>& lo, std::vector<int>& hi) {
  std::mt19937 rng(seed);
  lo.resize(size_t(rows));
  hi.resize(size_t(rows));
  for (int r = 0; r < rows; ++r) {
    const int kind = int(rng() % 4);
    int a = 0, b = nk;
    if (kind == 1) {
      a = int(rng() % unsigned(nk));
      b = a + 1 + int(rng() % unsigned(nk - a));
    } else if (kind == 2 && r % 3 == 1) {
      a = b = 0;
    } else if (kind == 3) {
      a = int(rng() % unsigned(nk));
      b = a + 1;
    }
    lo[size_t(r)] = a;
    hi[size_t(r)] = b;
  }
}

TEST(KvTileKernels, EveryIsaAndDtypeMatchesTheScalarReference) {
  constexpr int kLd = cpu::kKeyTile;
  uint32_t seed = 100;
  for (const Level& lv : host_levels())
    for (KvDType dt : kDtypes)
      for (int d : {8, 16, 24, 48, 64, 80, 128, 12})
        for (int nk : {64, 37, 1})
          for (int rows : {1, 2, 3, 4, 5, 8, 9}) {
            if (d % lv.d_multiple != 0) continue;
            ++seed;
            const cpu::KvTileKernels ref = cpu::kv_tile_kernels_scalar(dt), got = lv.make(dt);
            const Rows k = make_rows(dt, nk, d, seed), v = make_rows(dt, nk, d, seed + 7);
            const auto q = random_floats(size_t(rows) * d, -1.f, 1.f, seed + 1);
            std::vector<int> lo, hi;
            make_ranges(rows, nk, seed + 2, lo, hi);
            std::vector<float> kscale(k.scale), vscale(v.scale);
            for (auto& s : kscale) s *= 0.125f;
            const std::string what = std::string(lv.name) + " " + kv_dtype_name(dt) + " d=" + std::to_string(d) +
                                     " nk=" + std::to_string(nk) + " rows=" + std::to_string(rows);

            std::vector<float> s_ref(size_t(rows) * kLd, 0.f), s_got(s_ref.size(), 0.f);
            ref.scores(q.data(), rows, d, k.ptr.data(), kscale.data(), nk, lo.data(), hi.data(), s_ref.data(), kLd);
            got.scores(q.data(), rows, d, k.ptr.data(), kscale.data(), nk, lo.data(), hi.data(), s_got.data(), kLd);
            for (int r = 0; r < rows; ++r)
              for (int j = lo[size_t(r)]; j < hi[size_t(r)]; ++j) {
                // f32 sums of the same terms in another order: within a few ulp of Σ|terms|.
                double mag = 0;
                for (int c = 0; c < d; ++c) mag += std::fabs(q[size_t(r) * d + c] * k.raw[size_t(j) * d + c]);
                const float tol = float(2e-6 * mag * std::fabs(kscale[size_t(j)])) + 1e-30f;
                ASSERT_NEAR(s_got[size_t(r) * kLd + j], s_ref[size_t(r) * kLd + j], tol)
                    << what << " score r=" << r << " j=" << j;
              }

            // P: softmax-like weights in [0, 1], zero outside each row's range (as softmax leaves them).
            auto p = random_floats(size_t(rows) * kLd, 0.f, 1.f, seed + 3);
            for (int r = 0; r < rows; ++r)
              for (int j = 0; j < kLd; ++j)
                if (j < lo[size_t(r)] || j >= hi[size_t(r)]) p[size_t(r) * kLd + j] = 0.f;
            auto alpha = random_floats(size_t(rows), 0.f, 1.f, seed + 4);
            for (int r = 0; r < rows; ++r)
              if (lo[size_t(r)] >= hi[size_t(r)]) alpha[size_t(r)] = 1.f;  // softmax's value for an empty row
            const auto o0 = random_floats(size_t(rows) * d, -1.f, 1.f, seed + 5);
            std::vector<float> o_ref(o0), o_got(o0);
            ref.pv(p.data(), rows, kLd, v.ptr.data(), vscale.data(), d, lo.data(), hi.data(), alpha.data(), o_ref.data());
            got.pv(p.data(), rows, kLd, v.ptr.data(), vscale.data(), d, lo.data(), hi.data(), alpha.data(), o_got.data());
            for (int r = 0; r < rows; ++r)
              for (int c = 0; c < d; ++c) {
                const size_t i = size_t(r) * d + c;
                double mag = std::fabs(o0[i] * alpha[size_t(r)]);
                for (int j = lo[size_t(r)]; j < hi[size_t(r)]; ++j)
                  mag += std::fabs(p[size_t(r) * kLd + j] * vscale[size_t(j)] * v.raw[size_t(j) * d + c]);
                ASSERT_NEAR(o_got[i], o_ref[i], float(2e-6 * mag) + 1e-30f) << what << " pv r=" << r << " c=" << c;
              }
          }
}

// One row holding the codes under test, read through pv with p = 1, alpha = 1, o = 0: the output
// is exactly the widened value (·1 and +0 are exact), which must equal the codec's decode.
void expect_exact_widen(const Level& lv, KvDType dt, const std::vector<uint8_t>& row_bytes, int d) {
  const cpu::KvTileKernels got = lv.make(dt);
  const cpu::KvRowCodec codec = cpu::kv_row_codec(dt, CpuFeatures{});
  std::vector<float> want(static_cast<size_t>(d)), o(static_cast<size_t>(d), 0.f);
  codec.decode(row_bytes.data(), 1.f, d, want.data());
  const uint8_t* ptr = row_bytes.data();
  const float one = 1.f, p1 = 1.f;
  const int lo = 0, hi = 1;
  std::vector<float> p(cpu::kKeyTile, 0.f);
  p[0] = p1;
  got.pv(p.data(), 1, cpu::kKeyTile, &ptr, &one, d, &lo, &hi, &one, o.data());
  for (int c = 0; c < d; ++c)
    ASSERT_EQ(o[size_t(c)], want[size_t(c)]) << lv.name << " " << kv_dtype_name(dt) << " value " << c;
}

TEST(KvTileKernels, WideningIsExactForEveryCode) {
  for (const Level& lv : host_levels()) {
    // int8 and fp8: all 256 codes (fp8 NaN codes replaced by 0: the encoder never writes them).
    std::vector<uint8_t> codes(256);
    for (int c = 0; c < 256; ++c) codes[size_t(c)] = uint8_t(c);
    expect_exact_widen(lv, KvDType::INT8, codes, 256);
    for (auto& c : codes)
      if ((c & 0x7f) == 0x7f) c = 0;
    expect_exact_widen(lv, KvDType::FP8, codes, 256);
    // bf16: every sign/exponent with a few mantissas (infinities included, NaN left out).
    std::vector<uint8_t> bf(2 * 1024);
    int n = 0;
    for (int se = 0; se < 512 && n < 1024; ++se)
      for (int m : {0, 1, 0x40, 0x7f}) {
        if ((se & 0xff) == 0xff && m != 0) continue;
        const uint16_t h = uint16_t((se << 7) | m);
        std::memcpy(bf.data() + 2 * size_t(n++), &h, 2);
      }
    n = n / 16 * 16;
    expect_exact_widen(lv, KvDType::BF16, bf, n);
  }
}

}  // namespace
}  // namespace tern::test
