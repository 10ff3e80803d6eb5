// The whole-item decode kernels (KvDecodeJob: keys outermost over a paged pool, scores in
// registers) of every ISA level the host runs, against the scalar reference kv_decode_scalar, for
// every KV dtype and head_dim they take: pools of shuffled blocks of 16, 7 and 64 slots (runs cut
// at block edges), GQA groups of 1..8 with 1 or 3 query tokens (per-row causal ends), sliding
// windows, soft-capping, key ranges that start mid-block. The state (m, l, o) must match up to the
// order of f32 additions; widening must be exact for every code (a single key with p = 1).
#include <algorithm>
#include <cmath>
#include <cstring>
#include <numeric>
#include <random>

#include "kernels/cpu/attention_kernels.h"
#include "op_test_util.h"

namespace tern::test {
namespace {

struct Level {
  const char* name;
  cpu::KvDecodeFn (*make)(KvDType, int);
};

std::vector<Level> host_levels() {
  const CpuFeatures f = CpuFeatures::detect();
  std::vector<Level> out;
  if (f.avx2) out.push_back({"avx2", cpu::kv_decode_avx2});
  if (f.avx512) out.push_back({"avx512", cpu::kv_decode_avx512});
  return out;
}

constexpr KvDType kDtypes[] = {KvDType::F32, KvDType::BF16, KvDType::INT8, KvDType::FP8};

size_t align64(size_t n) { return (n + 63) & ~size_t(63); }

// One layer of a paged pool laid out like PagedKvCache's ([slots, heads, D] data, then the f32 row
// scales; K part then V part), blocks filled with rows encoded by the scalar codec.
struct Pool {
  std::vector<uint8_t> bytes;
  cpu::PagedKvLayer layer;
  std::vector<int32_t> table;
};

Pool make_pool(KvDType dt, int block, int heads, int d, int64_t n_keys, uint32_t seed) {
  const cpu::KvRowCodec codec = cpu::kv_row_codec(dt, CpuFeatures{});
  const size_t row = size_t(d) * codec.elem_bytes;
  const size_t scale_off = size_t(block) * heads * row;
  const size_t part = align64(scale_off + (codec.scaled ? size_t(block) * heads * sizeof(float) : 0));
  const int64_t blocks = (n_keys + block - 1) / block + 1;
  Pool p;
  p.bytes.assign(size_t(blocks) * 2 * part + 64, 0);
  uint8_t* base = p.bytes.data() + (64 - reinterpret_cast<uintptr_t>(p.bytes.data()) % 64) % 64;
  p.layer.k = base;
  p.layer.v = base + part;
  p.layer.block_stride = 2 * part;
  p.layer.scale_offset = scale_off;
  p.layer.block_size = block;
  p.layer.codec = codec;
  p.table.resize(size_t(blocks));
  std::iota(p.table.begin(), p.table.end(), 0);
  std::shuffle(p.table.begin(), p.table.end(), std::mt19937(seed));
  const auto x = random_floats(size_t(blocks) * block * heads * d * 2, -1.5f, 1.5f, seed + 1);
  size_t at = 0;
  for (int64_t b = 0; b < blocks; ++b)
    for (int kv = 0; kv < 2; ++kv) {
      uint8_t* blk = const_cast<uint8_t*>(kv ? p.layer.v : p.layer.k) + size_t(b) * p.layer.block_stride;
      for (int s = 0; s < block * heads; ++s, at += size_t(d)) {
        float sc = 1.f;
        codec.encode(x.data() + at, d, blk + size_t(s) * row, &sc);
        if (codec.scaled) std::memcpy(blk + scale_off + sizeof(float) * size_t(s), &sc, sizeof(float));
      }
    }
  return p;
}

struct Case {
  KvDType dt;
  int d, block, group, n_q;
  int window = 0;
  float softcap = 0.f;
  int64_t t_lo = 0;  // the job's first key (an item of a split-key decode starts mid-context)
};

void check_case(const Level& lv, const Case& c, uint32_t seed) {
  const cpu::KvDecodeFn got_fn = lv.make(c.dt, c.d);
  if (!got_fn) return;  // this level leaves the head_dim to the tile primitives
  const int heads = 2, rg = c.group * c.n_q, rows = heads * rg;
  const int64_t n_kv = 90 + seed % 120;
  const Pool pool = make_pool(c.dt, c.block, heads, c.d, n_kv, seed);
  const auto q = random_floats(size_t(rows) * c.d, -2.f, 2.f, seed + 2);
  std::vector<int64_t> lo(static_cast<size_t>(rg)), hi(static_cast<size_t>(rg));
  for (int i = 0; i < c.n_q; ++i)
    for (int h = 0; h < c.group; ++h) {
      const int64_t pos = n_kv - c.n_q + i;
      lo[size_t(i * c.group + h)] = c.window > 0 ? std::max<int64_t>(0, pos - c.window + 1) : 0;
      hi[size_t(i * c.group + h)] = pos + 1;
    }
  cpu::KvDecodeJob job;
  job.kv = &pool.layer;
  job.block_table = pool.table.data();
  job.n_kv_heads = heads;
  job.head_dim = c.d;
  job.g0 = 0;
  job.g1 = heads;
  job.rg = rg;
  job.q = q.data();
  job.lo = lo.data();
  job.hi = hi.data();
  job.t_lo = std::max<int64_t>(c.t_lo, c.window > 0 ? lo[0] : 0);
  job.t_hi = n_kv;
  job.scale = 1.f / std::sqrt(float(c.d));
  job.softcap = c.softcap;
  std::vector<float> work_buf(cpu::kv_decode_work_floats(rows, c.d) + 16);
  float* work = work_buf.data() + (16 - (reinterpret_cast<uintptr_t>(work_buf.data()) % 64) / 4) % 16;
  job.work = work;

  std::vector<float> o_ref(size_t(rows) * c.d), m_ref(static_cast<size_t>(rows)), l_ref(static_cast<size_t>(rows));
  cpu::KvDecodeJob ref = job;
  ref.o = o_ref.data();
  ref.m = m_ref.data();
  ref.l = l_ref.data();
  cpu::kv_decode_scalar(c.dt, c.d)(ref);

  std::vector<float> o(size_t(rows) * c.d, NAN), m(size_t(rows), NAN), l(size_t(rows), NAN);
  job.o = o.data();
  job.m = m.data();
  job.l = l.data();
  got_fn(job);

  const std::string what = std::string(lv.name) + " " + kv_dtype_name(c.dt) + " D=" + std::to_string(c.d) +
                           " B=" + std::to_string(c.block) + " G=" + std::to_string(c.group) + " n_q=" +
                           std::to_string(c.n_q) + " W=" + std::to_string(c.window) +
                           " cap=" + std::to_string(c.softcap) + " t_lo=" + std::to_string(job.t_lo);
  for (int r = 0; r < rows; ++r) {
    // Scores are f32 dot products in another order: |Δs| within a few ulp of Σ|q·k| · scale
    // (≤ ~1e-5 here); that moves m by as much and p, l, o by that relative amount.
    ASSERT_NEAR(m[size_t(r)], m_ref[size_t(r)], 1e-5f) << what << " m row " << r;
    ASSERT_NEAR(l[size_t(r)], l_ref[size_t(r)], 2e-5f * l_ref[size_t(r)]) << what << " l row " << r;
    for (int i = 0; i < c.d; ++i) {
      const float want = o_ref[size_t(r) * c.d + i] / l_ref[size_t(r)];
      ASSERT_NEAR(o[size_t(r) * c.d + i] / l[size_t(r)], want, 2e-5f) << what << " o row " << r << " value " << i;
    }
  }
}

TEST(KvDecodeKernels, EveryIsaDtypeAndShapeMatchesTheScalarReference) {
  ASSERT_NE(cpu::kv_decode_scalar(KvDType::BF16, 64), nullptr);
  uint32_t seed = 1;
  for (const Level& lv : host_levels())
    for (KvDType dt : kDtypes)
      for (int d : {16, 32, 48, 64, 80, 96, 112, 128, 256})
        for (int block : {16, 7, 64})
          for (int group : {1, 3, 4, 8})
            for (int n_q : {1, 3}) {
              if (group * n_q >= 16) continue;  // the decode path takes < 16 rows per kv head
              Case c{dt, d, block, group, n_q};
              if (seed % 3 == 0) c.window = 40;
              if (seed % 5 == 0) c.softcap = 3.f;
              if (seed % 7 == 0) c.t_lo = 21;
              check_case(lv, c, seed++);
              if (HasFatalFailure()) return;
            }
}

// One key, p = exp(0) = 1, row scales 1: o is exactly the widened V row, which must equal the
// codec's scalar decode of every code (bf16: every sign/exponent with a few mantissas).
TEST(KvDecodeKernels, WideningIsExactForEveryCode) {
  for (const Level& lv : host_levels())
    for (KvDType dt : {KvDType::BF16, KvDType::INT8, KvDType::FP8}) {
      const int d = 128;  // every level takes it
      const cpu::KvRowCodec codec = cpu::kv_row_codec(dt, CpuFeatures{});
      for (int part = 0; part < (dt == KvDType::BF16 ? 8 : 2); ++part) {
        std::vector<uint8_t> row(size_t(d) * codec.elem_bytes);
        for (int i = 0; i < d; ++i) {
          if (dt == KvDType::BF16) {
            const int se = part * 64 + i / 2;  // sign and exponent
            const uint16_t h = uint16_t((se << 7) | (i % 2 ? 0x41 : 0));
            const bool nan_or_inf = (se & 0xff) == 0xff;
            const uint16_t v = nan_or_inf ? uint16_t(0x3f80) : h;
            std::memcpy(row.data() + 2 * size_t(i), &v, 2);
          } else {
            row[size_t(i)] = uint8_t(part * 128 + i);
            if (dt == KvDType::FP8 && (i & 0x7f) == 0x7f) row[size_t(i)] = 0;  // never written
          }
        }
        // A pool of one block of one slot, one kv head; K = V = the row, scales 1.
        alignas(64) uint8_t block[2 * 1024 + 64] = {};
        cpu::PagedKvLayer L;
        L.k = block;
        L.v = block + 1024 + 64;
        L.block_stride = 0;
        L.scale_offset = 512;
        L.block_size = 1;
        L.codec = codec;
        std::memcpy(const_cast<uint8_t*>(L.v), row.data(), row.size());
        std::memcpy(const_cast<uint8_t*>(L.k), row.data(), row.size());
        const float one = 1.f;
        std::memcpy(const_cast<uint8_t*>(L.k) + 512, &one, 4);
        std::memcpy(const_cast<uint8_t*>(L.v) + 512, &one, 4);
        const int32_t table[1] = {0};
        std::vector<float> q(size_t(d), 0.f), o(size_t(d), 0.f), work(cpu::kv_decode_work_floats(1, d) + 16, 0.f);
        float* wk = work.data() + (16 - (reinterpret_cast<uintptr_t>(work.data()) % 64) / 4) % 16;
        float m = 0, l = 0;
        const int64_t lo = 0, hi = 1;
        cpu::KvDecodeJob job;
        job.kv = &L;
        job.block_table = table;
        job.n_kv_heads = 1;
        job.head_dim = d;
        job.g0 = 0;
        job.g1 = 1;
        job.rg = 1;
        job.q = q.data();
        job.lo = &lo;
        job.hi = &hi;
        job.t_lo = 0;
        job.t_hi = 1;
        job.scale = 1.f;
        job.o = o.data();
        job.m = &m;
        job.l = &l;
        job.work = wk;
        const cpu::KvDecodeFn fn = lv.make(dt, d);
        ASSERT_NE(fn, nullptr) << lv.name;
        fn(job);
        std::vector<float> want(static_cast<size_t>(d));
        codec.decode(row.data(), 1.f, d, want.data());
        ASSERT_EQ(l, 1.f) << lv.name;
        for (int i = 0; i < d; ++i)
          ASSERT_EQ(o[size_t(i)], want[size_t(i)]) << lv.name << " " << kv_dtype_name(dt) << " part " << part << " value " << i;
      }
    }
}

}  // namespace
}  // namespace tern::test
