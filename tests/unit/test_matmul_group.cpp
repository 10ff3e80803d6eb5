// matmul_group (ops/matmul.h): several products in one parallel region give exactly what matmul()
// gives for each, whatever the mix of weight families (bf16, f32, int8 W8A16 / W8A8, int4-group with
// act-order, FP8, GGUF Q8_0 / Q4_K), for every decode row count, on 1 and 2 threads, and for m above
// the decode range (one matmul per job).
#include <gtest/gtest.h>

#include <cstring>
#include <random>
#include <vector>

#include "core/dtype.h"
#include "core/weight_arena.h"
#include "formats/quant/pack_weights.h"
#include "formats/quant/quantized_linear.h"
#include "kernels/cpu/gguf_blocks.h"
#include "ops/matmul.h"
#include "unit/gguf_test_util.h"

namespace tern {
namespace {

using test::randn;

// The weights of one job and the storage behind them.
struct Weights {
  std::vector<float> f32;
  std::vector<uint16_t> bf16;
  std::vector<uint8_t> gguf;
  WeightMatrix w;
};

Weights dense(int64_t n, int64_t k, DType dt, uint32_t seed) {
  Weights r;
  r.f32 = randn(size_t(n * k), seed);
  r.w.rows = n, r.w.cols = k, r.w.dtype = dt;
  if (dt == DType::BF16) {
    for (float v : r.f32) r.bf16.push_back(f32_to_bf16(v));
    r.w.data = r.bf16.data();
  } else {
    r.w.data = r.f32.data();
  }
  return r;
}

Weights gguf(int64_t n, int64_t k, GgufType t, uint32_t seed) {
  Weights r;
  r.f32 = randn(size_t(n * k), seed);
  const size_t rb = gguf_row_bytes(t, k);
  r.gguf.resize(rb * size_t(n));
  for (int64_t i = 0; i < n; ++i) gguf_quantize_row(t, r.f32.data() + i * k, r.gguf.data() + size_t(i) * rb, k);
  r.w.format = WeightFormat::Gguf;
  r.w.gguf_type = int(t);
  r.w.data = r.gguf.data();
  r.w.rows = n, r.w.cols = k;
  r.w.quant_bytes = r.gguf.size();
  return r;
}

Weights quantized(int64_t n, int64_t k, int bits, int group, bool act_order, bool w8a8, WeightArena& arena,
                  uint32_t seed) {
  Weights r;
  r.f32 = randn(size_t(n * k), seed);
  QuantizedLinear ql = quantize_rtn(r.f32.data(), n, k, bits, group, true).value();
  if (act_order) {  // a column permutation as GPTQ's act-order stores it
    ql.g_idx.resize(size_t(k));
    for (int64_t j = 0; j < k; ++j) ql.g_idx[size_t(j)] = int32_t((j * 7 + 3) % k / group);
  }
  auto packed = pack_for_kernels(ql, w8a8, arena, "job");
  EXPECT_TRUE(packed.is_ok()) << packed.status().message();
  if (packed.is_ok()) r.w = *packed;
  return r;
}

TEST(MatmulGroup, EqualsOneMatmulPerJob) {
  const int64_t k = 512;
  WeightArena arena;
  std::vector<Weights> ws;
  ws.push_back(dense(96, k, DType::BF16, 1));
  ws.push_back(dense(40, k, DType::F32, 2));
  ws.push_back(quantized(64, k, 8, 0, false, false, arena, 3));
  ws.push_back(quantized(48, k, 8, 0, false, true, arena, 4));
  ws.push_back(quantized(80, k, 4, 128, false, false, arena, 5));
  ws.push_back(quantized(32, k, 4, 64, true, false, arena, 6));
  ws.push_back(gguf(64, k, GgufType::Q8_0, 7));
  ws.push_back(gguf(48, k, GgufType::Q4_K, 8));
  ws.push_back(gguf(32, k, GgufType::Q6_K, 9));
  const auto bias = randn(96, 10);
  for (const char* level : {"scalar", "avx2", "avx512"}) {
    const CpuFeatures cpu = CpuFeatures::detect().capped(level);
    for (int threads : {1, 2}) {
      ThreadPool pool(threads);
      ExecContext ctx(pool, cpu);
      for (int64_t m : {1, 2, 3, 4, 5, 8, 12}) {
        std::vector<std::vector<float>> xs, want, got;
        std::vector<MatmulJob> jobs;
        for (size_t j = 0; j < ws.size(); ++j) {
          xs.push_back(randn(size_t(m * k), uint32_t(100 + j + 10 * m)));
          want.emplace_back(size_t(m * ws[j].w.rows));
          got.emplace_back(size_t(m * ws[j].w.rows), -1.f);
          const float* b = j % 2 == 0 ? bias.data() : nullptr;
          matmul(ctx, xs[j].data(), m, ws[j].w, want[j].data(), b);
          jobs.push_back({xs[j].data(), &ws[j].w, nullptr, b});
        }
        for (size_t j = 0; j < ws.size(); ++j) jobs[j].y = got[j].data();
        matmul_group(ctx, m, jobs);
        for (size_t j = 0; j < ws.size(); ++j) {
          ASSERT_EQ(0, std::memcmp(want[j].data(), got[j].data(), want[j].size() * sizeof(float)))
              << level << " threads " << threads << " m " << m << " job " << j << " ("
              << matmul_kernel_name(ctx, m, ws[j].w) << ")";
        }
      }
    }
  }
}

// Decode GEMVs hand their rows out as ~256 KB items from a shared counter (ExecContext's ColumnSplit):
// whichever thread computes a column and however the rows are cut, every column is bitwise what one
// thread computes alone — for matmul() and matmul_group(), on 2 and 3 threads, split both ways. The
// shapes are large enough to make many items per matrix, with row counts that are not multiples of
// the kernels' tiles.
TEST(MatmulGroup, ResultsDoNotDependOnHowTheThreadsSplitTheRows) {
  const int64_t k = 2048;
  WeightArena arena;
  std::vector<Weights> ws;
  ws.push_back(dense(1000, k, DType::BF16, 11));
  ws.push_back(dense(333, k, DType::F32, 12));
  ws.push_back(quantized(1000, k, 8, 0, false, false, arena, 13));
  ws.push_back(quantized(744, k, 4, 128, false, false, arena, 14));
  ws.push_back(gguf(1000, k, GgufType::Q8_0, 15));
  ws.push_back(gguf(520, k, GgufType::Q4_K, 16));
  const CpuFeatures cpu = CpuFeatures::detect();
  for (int64_t m : {1, 3, 8}) {
    std::vector<std::vector<float>> xs, want;
    ThreadPool one(1);
    ExecContext ctx1(one, cpu);
    for (size_t j = 0; j < ws.size(); ++j) {
      xs.push_back(randn(size_t(m * k), uint32_t(200 + j + 10 * m)));
      want.emplace_back(size_t(m * ws[j].w.rows));
      matmul(ctx1, xs[j].data(), m, ws[j].w, want[j].data());
    }
    for (int threads : {2, 3}) {
      ThreadPool pool(threads);
      for (ColumnSplit split : {ColumnSplit::kDynamic, ColumnSplit::kStatic}) {
        ExecContext ctx(pool, cpu);
        ctx.set_column_split(split);
        const char* how = split == ColumnSplit::kDynamic ? "dynamic" : "static";
        std::vector<std::vector<float>> got;
        std::vector<MatmulJob> jobs;
        for (size_t j = 0; j < ws.size(); ++j) {
          std::vector<float> y(want[j].size(), -1.f);
          matmul(ctx, xs[j].data(), m, ws[j].w, y.data());
          ASSERT_EQ(0, std::memcmp(want[j].data(), y.data(), y.size() * sizeof(float)))
              << "matmul " << how << " threads " << threads << " m " << m << " job " << j << " ("
              << matmul_kernel_name(ctx, m, ws[j].w) << ")";
          got.emplace_back(want[j].size(), -1.f);
          jobs.push_back({xs[j].data(), &ws[j].w, nullptr});
        }
        for (size_t j = 0; j < ws.size(); ++j) jobs[j].y = got[j].data();
        matmul_group(ctx, m, jobs);
        for (size_t j = 0; j < ws.size(); ++j) {
          ASSERT_EQ(0, std::memcmp(want[j].data(), got[j].data(), got[j].size() * sizeof(float)))
              << "matmul_group " << how << " threads " << threads << " m " << m << " job " << j;
        }
      }
    }
  }
}

TEST(MatmulGroup, EmptyGroupAndZeroRowsDoNothing) {
  ThreadPool pool(2);
  ExecContext ctx(pool, CpuFeatures::detect());
  matmul_group(ctx, 1, {});
  Weights w = dense(8, 64, DType::F32, 1);
  std::vector<float> x(64, 1.f), y(8, -1.f);
  const MatmulJob job{x.data(), &w.w, y.data()};
  matmul_group(ctx, 0, std::span<const MatmulJob>(&job, 1));
  for (float v : y) EXPECT_EQ(v, -1.f);
}

}  // namespace
}  // namespace tern
