// Tensor parallelism on quantized weights (issue 17): row and column slices of every format tern
// loads quantized (int8 per channel, int4 groups, GGUF block types) compute what the whole matrix
// computes; the intermediate split moves onto down_proj's blocks; an attention split off o_proj's
// blocks is a one-line error; tern's quantized checkpoints and GGUF files split over 2 threads give
// the single process's greedy tokens; the int8 all-reduce (--tp-comm int8) and its byte count.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>

#include "compress/checkpoint_writer.h"
#include "compress/gguf_quantize.h"
#include "formats/gguf/gguf_mix.h"
#include "formats/quant/pack_weights.h"
#include "formats/quant/quantized_linear.h"
#include "gguf_test_util.h"
#include "model/tp_shard.h"
#include "ops/matmul.h"
#include "parallel/compressed_all_reduce.h"
#include "test_support.h"
#include "tp_threads_util.h"

namespace tern {
namespace {

using test::tp_threads::greedy;
using test::randn;
using test::tp_threads::tp_greedy;

struct Packed {
  WeightArena arena;
  WeightMatrix w;
};

// [n, k] random weights in `fmt`: "int8", "int4" (group 32, symmetric), "int4a" (group 64, zero points).
std::unique_ptr<Packed> pack(const std::string& fmt, int64_t n, int64_t k, uint32_t seed) {
  auto p = std::make_unique<Packed>();
  const auto w = randn(size_t(n * k), seed);
  const int bits = fmt == "int8" ? 8 : 4, group = fmt == "int8" ? 0 : fmt == "int4" ? 32 : 64;
  auto ql = quantize_rtn(w.data(), n, k, bits, group, /*symmetric=*/fmt != "int4a");
  EXPECT_TRUE(ql.is_ok());
  auto m = pack_for_kernels(*ql, false, p->arena, fmt);
  EXPECT_TRUE(m.is_ok()) << m.status().message();
  p->w = *m;
  return p;
}

// x [m, k] -> columns [c0, c0 + n) as a contiguous [m, n].
std::vector<float> cols_of(const std::vector<float>& x, int64_t m, int64_t k, int64_t c0, int64_t n) {
  std::vector<float> out(size_t(m * n));
  for (int64_t i = 0; i < m; ++i) std::copy_n(x.begin() + i * k + c0, n, out.begin() + i * n);
  return out;
}

class TpSlices : public ::testing::Test {
 protected:
  // Row slice = those rows of the product; two column slices at c add up to the product.
  void check(const WeightMatrix& w, int64_t c) {
    const int64_t n = w.rows, k = w.cols, m = 3;
    const auto x = randn(size_t(m * k), 7);
    std::vector<float> y(size_t(m * n)), y1(size_t(m * n)), y2(size_t(m * n)), yr(size_t(m * 2));
    matmul(ctx_, x.data(), m, w, y.data());
    matmul(ctx_, x.data(), m, row_slice(w, 3, 2), yr.data());
    for (int64_t i = 0; i < m; ++i) {
      for (int64_t j = 0; j < 2; ++j) EXPECT_NEAR(yr[size_t(i * 2 + j)], y[size_t(i * n + 3 + j)], 1e-4f) << i << "," << j;
    }
    ASSERT_EQ(c % column_block(w), 0);
    WeightArena arena;
    const WeightMatrix a = column_slice(w, 0, c, arena), b = column_slice(w, c, k - c, arena);
    EXPECT_EQ(a.cols, c);
    EXPECT_EQ(b.cols, k - c);
    const auto xa = cols_of(x, m, k, 0, c), xb = cols_of(x, m, k, c, k - c);
    matmul(ctx_, xa.data(), m, a, y1.data());
    matmul(ctx_, xb.data(), m, b, y2.data());
    for (size_t i = 0; i < y.size(); ++i) EXPECT_NEAR(y1[i] + y2[i], y[i], 1e-3f * (1.f + std::fabs(y[i]))) << i;
  }
  ThreadPool pool_{1};
  ExecContext ctx_{pool_, CpuFeatures::detect()};
};

TEST_F(TpSlices, TernQuantizedFormats) {
  for (const char* f : {"int8", "int4", "int4a"}) {
    SCOPED_TRACE(f);
    auto p = pack(f, 8, 512, 3);
    EXPECT_EQ(column_block(p->w), f == std::string("int8") ? 1 : f == std::string("int4") ? 32 : 64);
    check(p->w, f == std::string("int4a") ? 192 : 224);
  }
}

TEST_F(TpSlices, GgufBlockTypes) {
  for (GgufType t : {GgufType::Q8_0, GgufType::Q4_0, GgufType::Q5_0, GgufType::Q4_K, GgufType::Q5_K, GgufType::Q6_K}) {
    SCOPED_TRACE(gguf_traits(t).name);
    const auto q = test::make(t, 8, 512, 11);
    EXPECT_EQ(column_block(q.w), gguf_traits(t).block_elems);
    check(q.w, 256);
  }
}

TEST_F(TpSlices, CopyMatrixIsADeepCopy) {
  auto p = pack("int4a", 4, 64, 5);
  WeightArena arena;
  const WeightMatrix c = copy_matrix(row_slice(p->w, 1, 2), arena);
  EXPECT_TRUE(arena.owns(c.data));
  EXPECT_TRUE(arena.owns(c.scales));
  EXPECT_TRUE(arena.owns(c.zeros));
  EXPECT_FALSE(p->arena.owns(c.data));
  EXPECT_EQ(std::memcmp(c.data, static_cast<const char*>(p->w.data) + 32, 64), 0);
  EXPECT_EQ(c.scales[0], p->w.scales[1]);
}

// A tern quantized checkpoint of a tiny architecture (round to nearest, the layouts tern quantize writes).
std::string write_quantized(const std::string& arch, const QuantConfig& layout, const std::string& out) {
  auto base = Model::load(test::tiny_arch_dir(arch));
  EXPECT_TRUE(base.is_ok());
  LinearQuantizer q = [&](const std::string&, const float* w, int64_t rows, int64_t cols) {
    return quantize_rtn(w, rows, cols, layout.bits, layout.group, layout.symmetric);
  };
  CheckpointWriteOptions wo;
  wo.out_dir = out;
  const Status s = write_quantized_checkpoint(**base, layout, q, wo);
  EXPECT_TRUE(s.is_ok()) << s.message();
  return out;
}

QuantConfig int8_layout() {
  QuantConfig c;
  c.method = QuantMethod::CompressedTensors, c.bits = 8, c.group = 0, c.symmetric = true;
  c.ct_format = "pack-quantized", c.ignore = {"lm_head"};
  return c;
}

QuantConfig int4_layout(QuantMethod m, int group, bool symmetric) {
  QuantConfig c;
  c.method = m, c.bits = 4, c.group = group, c.symmetric = symmetric;
  return c;
}

const std::vector<int32_t> kIds = {144, 325, 16, 224, 992, 922, 956};

std::vector<int32_t> single(const std::string& dir) {
  auto whole = Model::load(dir);
  EXPECT_TRUE(whole.is_ok()) << whole.status().message();
  if (!whole.is_ok()) return {};
  ThreadPool pool(1);
  ExecContext ctx(pool, CpuFeatures::detect());
  return greedy(**whole, ctx, kIds, 12);
}

TEST(TpQuantThreads, TernCheckpointsGiveTheSingleProcessTokens) {
  struct Case {
    const char* arch;
    QuantConfig layout;
  };
  for (const Case& c : {Case{"llama", int8_layout()}, Case{"llama", int4_layout(QuantMethod::Gptq, 32, true)},
                        Case{"qwen2", int4_layout(QuantMethod::Awq, 32, false)},
                        Case{"phi3", int4_layout(QuantMethod::Gptq, 32, false)},
                        Case{"llama_tied", int8_layout()}}) {
    SCOPED_TRACE(std::string(c.arch) + " " + quant_method_name(c.layout.method) + " int" + std::to_string(c.layout.bits));
    test::TempDir out;
    const std::string dir = write_quantized(c.arch, c.layout, out.path());
    const auto want = single(dir);
    ASSERT_EQ(want.size(), 12u);
    EXPECT_EQ(tp_greedy(dir, 2, kIds, 12), want);
  }
}

TEST(TpQuantThreads, IntermediateSplitFollowsDownProjBlocks) {
  // int4 group 32: intermediate 160 = 5 groups -> 2 + 3 groups (64 + 96 columns), not 80 + 80.
  test::TempDir out;
  const std::string dir = write_quantized("llama", int4_layout(QuantMethod::Gptq, 32, true), out.path());
  auto whole = Model::load(dir);
  ASSERT_TRUE(whole.is_ok());
  for (int r = 0; r < 2; ++r) {
    auto t = tp_layout((*whole)->config(), r, 2);
    ASSERT_TRUE(t.is_ok());
    EXPECT_EQ(t->inter.size(), 80);
    auto a = tp_align_layout(*t, (*whole)->weights(), (*whole)->config());
    ASSERT_TRUE(a.is_ok()) << a.status().message();
    EXPECT_EQ(a->inter.begin, r == 0 ? 0 : 64);
    EXPECT_EQ(a->inter.end, r == 0 ? 64 : 160);
  }
  // 4 ranks: 16 of o_proj's 64 columns each, inside one 32-column group.
  EXPECT_EQ(test::tp_threads::tp_load_error(dir, 4),
            "tensor parallelism: layer 0 o_proj (int4 group 32): the split at columns [0, 16) is not on its 32-column "
            "blocks");
}

// Mixture of experts and MLA, quantized: every expert's down_proj cut on its int4 groups (96 columns
// = 3 groups of 32 -> 32 + 64), the shared expert's too (qwen2_moe: 128 -> 64 + 64), MLA's o_proj by
// heads (deepseek_v3: 4 heads x 16 values, 32 columns a rank, one group); int8 per channel.
TEST(TpQuantThreads, MoeAndMlaCheckpointsGiveTheSingleProcessTokens) {
  for (const char* arch : {"qwen3_moe", "qwen2_moe", "deepseek_v3"}) {
    for (const QuantConfig& layout : {int8_layout(), int4_layout(QuantMethod::Gptq, 32, true)}) {
      SCOPED_TRACE(std::string(arch) + " int" + std::to_string(layout.bits));
      test::TempDir out;
      const std::string dir = write_quantized(arch, layout, out.path());
      const auto want = single(dir);
      ASSERT_EQ(want.size(), 12u);
      EXPECT_EQ(tp_greedy(dir, 2, kIds, 12), want);
    }
  }
  test::TempDir out;
  const std::string dir = write_quantized("qwen3_moe", int4_layout(QuantMethod::Gptq, 32, true), out.path());
  auto whole = Model::load(dir);
  ASSERT_TRUE(whole.is_ok());
  for (int r = 0; r < 2; ++r) {
    auto t = tp_layout((*whole)->config(), r, 2);
    ASSERT_TRUE(t.is_ok());
    auto a = tp_align_layout(*t, (*whole)->weights(), (*whole)->config());
    ASSERT_TRUE(a.is_ok()) << a.status().message();
    EXPECT_EQ(a->expert_inter.begin, r == 0 ? 0 : 32);
    EXPECT_EQ(a->expert_inter.end, r == 0 ? 32 : 96);
  }
}

TEST(TpQuantThreads, GgufFilesGiveTheSingleProcessTokens) {
  auto base = Model::load(test::tiny_arch_dir("llama"));
  ASSERT_TRUE(base.is_ok());
  for (GgufType t : {GgufType::Q8_0, GgufType::Q4_0}) {
    SCOPED_TRACE(gguf_traits(t).name);
    test::TempDir out;
    const std::string path = out.file("m.gguf");
    ASSERT_TRUE(quantize_to_gguf(**base, path, t).is_ok());
    const auto want = single(path);
    ASSERT_EQ(want.size(), 12u);
    EXPECT_EQ(tp_greedy(path, 2, kIds, 12), want);
  }
  // A mixture of experts in Q8_0: each expert's 160 down columns = 5 blocks of 32 -> 64 + 96.
  auto moe = Model::load(test::tiny_arch_dir("mixtral"));
  ASSERT_TRUE(moe.is_ok());
  test::TempDir out;
  const std::string path = out.file("moe.gguf");
  ASSERT_TRUE(quantize_to_gguf(**moe, path, GgufType::Q8_0).is_ok());
  const auto want = single(path);
  ASSERT_EQ(want.size(), 12u);
  EXPECT_EQ(tp_greedy(path, 2, kIds, 12), want);
}

TEST(TpCommInt8, ParsesItsValuesAndNamesAnUnknownOne) {
  EXPECT_EQ(*parse_tp_comm("auto"), TpCommMode::Activation);
  EXPECT_EQ(*parse_tp_comm("f32"), TpCommMode::Activation);
  EXPECT_EQ(*parse_tp_comm("int8"), TpCommMode::Int8);
  auto bad = parse_tp_comm("int4");
  ASSERT_FALSE(bad.is_ok());
  EXPECT_EQ(bad.status().message(), "--tp-comm 'int4' is not one of auto, f32, int8");
  EXPECT_EQ(tp_all_reduce_bytes(TpCommMode::Activation, 3, 512), 3 * 512 * 4);
  EXPECT_EQ(tp_all_reduce_bytes(TpCommMode::Int8, 3, 512), 3 * 516);
}

TEST(TpCommInt8, RoundTripErrorIsHalfAStepOfEachRow) {
  const int64_t rows = 3, cols = 100;
  auto x = randn(size_t(rows * cols), 9);
  for (int64_t j = 0; j < cols; ++j) x[size_t(2 * cols + j)] = 0.f;  // an all-zero row stays zero
  std::vector<int8_t> wire(size_t(rows * (cols + 4)));
  quantize_rows_int8(x.data(), rows, cols, wire.data());
  std::vector<float> back(size_t(rows * cols), 0.f);
  add_dequantized_rows_int8(wire.data(), rows, cols, back.data());
  for (int64_t r = 0; r < rows; ++r) {
    float amax = 0;
    for (int64_t j = 0; j < cols; ++j) amax = std::max(amax, std::fabs(x[size_t(r * cols + j)]));
    for (int64_t j = 0; j < cols; ++j) {
      EXPECT_LE(std::fabs(back[size_t(r * cols + j)] - x[size_t(r * cols + j)]), amax / 127.f * 0.5f + 1e-6f);
    }
  }
  for (int64_t j = 0; j < cols; ++j) EXPECT_EQ(back[size_t(2 * cols + j)], 0.f);
  // A row holding inf or NaN comes back NaN (as an f32 sum would not be finite either), never garbage.
  x[5] = std::numeric_limits<float>::infinity();
  quantize_rows_int8(x.data(), rows, cols, wire.data());
  std::fill(back.begin(), back.end(), 0.f);
  add_dequantized_rows_int8(wire.data(), rows, cols, back.data());
  EXPECT_TRUE(std::isnan(back[5]));
  EXPECT_TRUE(std::isnan(back[0]));
  EXPECT_FALSE(std::isnan(back[size_t(cols)]));
}

TEST(TpCommInt8, EveryRankGetsTheSameSumAndCountsItsBytes) {
  const int T = 3;
  const int64_t rows = 2, cols = 64;
  test::ThreadGroup g(T);
  std::vector<std::vector<float>> data(T), want(T);
  std::vector<int64_t> bytes(T);
  std::vector<std::thread> ranks;
  std::vector<float> exact(size_t(rows * cols), 0.f);
  for (int r = 0; r < T; ++r) {
    data[size_t(r)] = randn(size_t(rows * cols), 20 + uint32_t(r));
    for (size_t i = 0; i < exact.size(); ++i) exact[i] += data[size_t(r)][i];
  }
  for (int r = 0; r < T; ++r) {
    ranks.emplace_back([&, r] {
      test::ThreadComm comm(g, r);
      std::vector<int8_t> scratch;
      EXPECT_TRUE(comm.all_reduce_sum_int8(data[size_t(r)].data(), rows, cols, scratch).is_ok());
      bytes[size_t(r)] = comm.stats().all_reduce_bytes;
    });
  }
  for (auto& t : ranks) t.join();
  for (int r = 1; r < T; ++r) EXPECT_EQ(data[size_t(r)], data[0]);  // bit for bit: the same sum everywhere
  for (size_t i = 0; i < exact.size(); ++i) EXPECT_NEAR(data[0][i], exact[i], 0.1f);
  for (int r = 0; r < T; ++r) EXPECT_EQ(bytes[size_t(r)], rows * (cols + 4));
}

TEST(TpCommInt8, GreedyDecodeRunsOnEveryRank) {
  // The tiny llama under --tp-comm int8: the decode runs on both ranks and the tokens stay close to
  // the exact all-reduce's (most of 12 equal; the int8 rounding may flip a near tie).
  const std::string dir = test::tiny_arch_dir("llama");
  const auto want = single(dir);
  ModelLoadOptions o;
  o.tp_comm = TpCommMode::Int8;
  const auto got = tp_greedy(dir, 2, kIds, 12, o);
  ASSERT_EQ(got.size(), want.size());
  EXPECT_EQ(got[0], want[0]);
}

}  // namespace
}  // namespace tern
