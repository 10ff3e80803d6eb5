// Paged attention against the contiguous attention op: random K/V written into a paged pool under
// shuffled (non-contiguous) block tables, a ragged batch of decode tokens and prompt chunks, every
// KV dtype, block sizes that do and do not hold whole key tiles, every ISA level the host runs.
// The reference reads the same (decoded) K/V rows back contiguously, so the comparison is tight.
#include <algorithm>
#include <cmath>
#include <numeric>
#include <random>

#include "kv/paged_kv_cache.h"
#include "op_test_util.h"
#include "ops/attention.h"
#include "ops/paged_attention.h"

namespace tern::test {
namespace {

struct SeqCase {
  int64_t pos0, n_q;
};

struct BatchCase {
  int head_dim, n_heads, n_kv_heads, block_size;
  KvDType dtype;
  std::vector<SeqCase> seqs;
  int window = 0;
  float softcap = 0.f;
  float scale = 0.f;  // 0: 1/sqrt(head_dim)
};

void run_batch(ExecContext& ctx, const BatchCase& c, uint32_t seed) {
  ModelConfig cfg;
  cfg.n_layers = 2;  // the batch uses layer 1, so layer offsets are exercised
  cfg.n_kv_heads = c.n_kv_heads;
  cfg.head_dim = c.head_dim;
  const int D = c.head_dim, B = c.block_size;
  const int64_t kv_row = int64_t(c.n_kv_heads) * D, q_row = int64_t(c.n_heads) * D;
  int64_t blocks = 0, rows = 0;
  for (const SeqCase& s : c.seqs) blocks += (s.pos0 + s.n_q + B - 1) / B + 1, rows += s.n_q;
  PagedKvCache pool(cfg, B, c.dtype);
  ASSERT_TRUE(pool.allocate(blocks).is_ok());
  std::vector<int32_t> ids(static_cast<size_t>(blocks));
  std::iota(ids.begin(), ids.end(), 0);
  std::mt19937 rng(seed);
  std::shuffle(ids.begin(), ids.end(), rng);

  const auto q = random_floats(size_t(rows * q_row), -2.f, 2.f, seed + 1);
  std::vector<float> out(size_t(rows * q_row), NAN);
  std::vector<std::vector<int32_t>> tables;
  std::vector<PagedAttnSeq> seqs;
  std::vector<std::vector<float>> ks, vs;
  size_t next_id = 0;
  int64_t row0 = 0;
  for (size_t s = 0; s < c.seqs.size(); ++s) {
    const int64_t n = c.seqs[s].pos0 + c.seqs[s].n_q;
    std::vector<int32_t> t(size_t((n + B - 1) / B));
    for (auto& b : t) b = ids[next_id++];
    tables.push_back(t);
    ks.push_back(random_floats(size_t(n * kv_row), -1.5f, 1.5f, seed + 10 + uint32_t(s)));
    vs.push_back(random_floats(size_t(n * kv_row), -1.5f, 1.5f, seed + 20 + uint32_t(s)));
    pool.write(ctx.cpu(), 1, tables.back().data(), 0, n, ks.back().data(), vs.back().data());
    seqs.push_back({c.seqs[s].pos0, c.seqs[s].n_q, row0, nullptr});
    row0 += c.seqs[s].n_q;
  }
  for (size_t s = 0; s < seqs.size(); ++s) seqs[s].block_table = tables[s].data();

  AttentionShape shape;
  shape.n_heads = c.n_heads;
  shape.n_kv_heads = c.n_kv_heads;
  shape.head_dim = D;
  shape.scale = c.scale > 0 ? c.scale : 1.f / std::sqrt(float(D));
  shape.sliding_window = c.window;
  shape.softcap = c.softcap;
  PagedAttentionWorkspace ws;
  paged_attention(ctx, shape, pool.layer(1, ctx.cpu()), seqs.data(), int(seqs.size()), q.data(), out.data(), ws);

  for (size_t s = 0; s < seqs.size(); ++s) {
    const int64_t n = seqs[s].pos0 + seqs[s].n_q;
    // The stored (rounded / quantized) rows, contiguous.
    std::vector<float> k(size_t(n * kv_row)), v(size_t(n * kv_row));
    for (int64_t t = 0; t < n; ++t)
      for (int g = 0; g < c.n_kv_heads; ++g) {
        pool.read_row(1, false, tables[s].data(), t, g, &k[size_t(t * kv_row + g * D)]);
        pool.read_row(1, true, tables[s].data(), t, g, &v[size_t(t * kv_row + g * D)]);
      }
    if (c.dtype == KvDType::F32) {
      ASSERT_EQ(k, ks[s]) << "f32 pool rows are stored exactly";
    }
    std::vector<float> want(size_t(seqs[s].n_q * q_row));
    attention(ctx, shape, q.data() + seqs[s].row0 * q_row, seqs[s].n_q, seqs[s].pos0, k.data(), v.data(), n,
              want.data());
    double max_err = 0, max_ref = 0;
    for (size_t i = 0; i < want.size(); ++i) {
      const float got = out[size_t(seqs[s].row0 * q_row) + i];
      ASSERT_TRUE(std::isfinite(got)) << "seq " << s << " output " << i;
      max_err = std::max(max_err, double(std::abs(got - want[i])));
      max_ref = std::max(max_ref, double(std::abs(want[i])));
    }
    EXPECT_LE(max_err, 2e-5 * std::max(1.0, max_ref))
        << "seq " << s << " pos0=" << seqs[s].pos0 << " n_q=" << seqs[s].n_q << " B=" << B
        << " dtype=" << kv_dtype_name(c.dtype) << " D=" << D << " W=" << c.window;
  }
}

const std::vector<SeqCase> kMixed = {{300, 1}, {0, 70}, {50, 37}, {1, 1}, {129, 3}, {700, 1}, {0, 5}};

struct PagedAttentionTest : IsaThreads {};

TEST_P(PagedAttentionTest, EveryDtypeAndBlockSize) {
  uint32_t seed = 1;
  for (KvDType dt : {KvDType::F32, KvDType::BF16, KvDType::INT8, KvDType::FP8})
    for (int B : {16, 64, 7}) run_batch(*ctx, {64, 8, 2, B, dt, kMixed}, seed++);
}

TEST_P(PagedAttentionTest, GqaRatiosHeadDims) {
  run_batch(*ctx, {32, 4, 4, 16, KvDType::BF16, kMixed}, 40);
  run_batch(*ctx, {128, 8, 1, 16, KvDType::F32, kMixed}, 41);
  run_batch(*ctx, {16, 6, 2, 5, KvDType::INT8, kMixed}, 42);
  run_batch(*ctx, {12, 4, 2, 16, KvDType::FP8, kMixed}, 43);  // head_dim % 8 != 0: scalar kernels
}

TEST_P(PagedAttentionTest, SlidingWindowAndSoftcap) {
  run_batch(*ctx, {64, 8, 2, 16, KvDType::F32, kMixed, 40}, 50);
  run_batch(*ctx, {64, 8, 2, 64, KvDType::F32, kMixed, 100}, 51);
  run_batch(*ctx, {32, 4, 2, 16, KvDType::BF16, kMixed, 0, 20.f}, 52);
  // Gemma 2's sliding layers: window, soft-cap and a query_pre_attn_scalar scale together.
  run_batch(*ctx, {16, 4, 2, 16, KvDType::F32, kMixed, 64, 5.f, 0.4f}, 53);
  run_batch(*ctx, {64, 8, 4, 64, KvDType::BF16, kMixed, 100, 3.f, 0.3f}, 54);
}

TEST_P(PagedAttentionTest, SplitKeyDecodeWithFourThreads) {
  ThreadPool pool4(4);
  ExecContext ctx4(pool4, ctx->cpu());
  run_batch(ctx4, {64, 8, 2, 16, KvDType::BF16, {{2000, 1}}}, 60);
  run_batch(ctx4, {64, 8, 2, 64, KvDType::F32, {{1500, 1}, {900, 2}}}, 61);
  run_batch(ctx4, {64, 8, 2, 16, KvDType::INT8, {{1200, 1}}, 300}, 62);
}

TERN_INSTANTIATE_ISA_THREADS(PagedAttentionTest);

}  // namespace
}  // namespace tern::test
