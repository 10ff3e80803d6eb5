// The MoE block against a row-by-row, expert-by-expert reference in double: grouped by expert it
// must compute the same sum, read each selected expert once per forward (counters), and run
// quantized experts through the existing kernels.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>
#include <set>
#include <vector>

#include "core/weight_arena.h"
#include "formats/quant/pack_weights.h"
#include "model/blocks/moe.h"
#include "op_test_util.h"

namespace tern {
namespace {

struct Fixture {
  ModelConfig cfg;
  std::vector<std::vector<float>> store;  // owns every matrix
  MoeWeights w;

  WeightMatrix mat(std::mt19937& rng, int64_t rows, int64_t cols, float scale) {
    std::normal_distribution<float> d(0.0f, scale);
    store.emplace_back(size_t(rows * cols));
    for (float& v : store.back()) v = d(rng);
    return WeightMatrix{store.back().data(), DType::F32, rows, cols};
  }
  ExpertMlp expert(std::mt19937& rng, int64_t inter) {
    const int64_t H = cfg.hidden_size;
    return {mat(rng, inter, H, 0.2f), mat(rng, inter, H, 0.2f), mat(rng, H, inter, 0.2f)};
  }

  Fixture(bool deepseek, bool shared_gate, int64_t hidden = 64, int64_t inter = 32) {
    std::mt19937 rng(7);
    store.reserve(64);
    cfg.hidden_size = hidden;
    MoeConfig& m = cfg.moe;
    m.n_experts = 8, m.top_k = 3, m.expert_intermediate = inter;
    if (deepseek) {
      m.scoring = MoeScoring::kSigmoid, m.correction_bias = true, m.n_group = 4, m.topk_group = 2;
      m.norm_topk_prob = true, m.routed_scaling_factor = 2.5, m.shared_intermediate = 96;
    } else {
      m.norm_topk_prob = false;
      m.shared_intermediate = shared_gate ? 64 : 0;
      m.shared_expert_gate = shared_gate;
    }
    w.router = mat(rng, m.n_experts, cfg.hidden_size, 1.0f);
    if (deepseek) {
      std::normal_distribution<float> d(0.0f, 0.1f);
      for (int e = 0; e < m.n_experts; ++e) w.router_bias.push_back(d(rng));
    }
    for (int e = 0; e < m.n_experts; ++e) w.experts.push_back(expert(rng, m.expert_intermediate));
    if (m.shared_intermediate > 0) w.shared = expert(rng, m.shared_intermediate);
    if (shared_gate) w.shared_gate = mat(rng, 1, cfg.hidden_size, 0.3f);
  }
};

double dot(const float* a, const float* b, int64_t n) {
  double s = 0;
  for (int64_t i = 0; i < n; ++i) s += double(a[i]) * b[i];
  return s;
}

// One expert on one row in double: down(silu(gate x) * up x).
std::vector<double> expert_ref(const ExpertMlp& e, const float* x) {
  const int64_t I = e.gate.rows, H = e.gate.cols;
  auto row = [](const WeightMatrix& w, int64_t r) { return static_cast<const float*>(w.data) + r * w.cols; };
  std::vector<float> h(static_cast<size_t>(I));
  for (int64_t i = 0; i < I; ++i) {
    const double g = dot(row(e.gate, i), x, H), u = dot(row(e.up, i), x, H);
    h[size_t(i)] = float(g / (1 + std::exp(-g)) * u);
  }
  std::vector<double> y(static_cast<size_t>(H));
  for (int64_t o = 0; o < H; ++o) y[size_t(o)] = dot(row(e.down, o), h.data(), I);
  return y;
}

std::vector<double> moe_ref(const Fixture& f, const float* x) {
  const MoeConfig& m = f.cfg.moe;
  const int64_t H = f.cfg.hidden_size;
  std::vector<float> logits(size_t(m.n_experts));
  for (int e = 0; e < m.n_experts; ++e) {
    logits[size_t(e)] = float(dot(static_cast<const float*>(f.w.router.data) + e * H, x, H));
  }
  std::vector<int32_t> idx(size_t(m.top_k));
  std::vector<float> wt(size_t(m.top_k));
  MoeRouteScratch s;
  moe_route(m, logits.data(), f.w.router_bias.empty() ? nullptr : f.w.router_bias.data(), 1, idx.data(), wt.data(), s);
  std::vector<double> y(size_t(H), 0.0);
  for (int j = 0; j < m.top_k; ++j) {
    const auto e = expert_ref(f.w.experts[size_t(idx[size_t(j)])], x);
    for (int64_t h = 0; h < H; ++h) y[size_t(h)] += wt[size_t(j)] * e[size_t(h)];
  }
  if (f.w.shared.present()) {
    const auto e = expert_ref(f.w.shared, x);
    double g = 1;
    if (f.w.shared_gate.rows > 0) g = 1 / (1 + std::exp(-dot(static_cast<const float*>(f.w.shared_gate.data), x, H)));
    for (int64_t h = 0; h < H; ++h) y[size_t(h)] += g * e[size_t(h)];
  }
  return y;
}

std::vector<float> random_rows(int64_t rows, int64_t cols, unsigned seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> d(0.0f, 1.0f);
  std::vector<float> x(size_t(rows * cols));
  for (float& v : x) v = d(rng);
  return x;
}

using MoeBlockTest = test::IsaThreads;

TEST_P(MoeBlockTest, MatchesPerRowReference) {
  for (int variant = 0; variant < 3; ++variant) {
    SCOPED_TRACE(variant);
    const Fixture f(/*deepseek=*/variant == 2, /*shared_gate=*/variant == 1);
    const int64_t H = f.cfg.hidden_size;
    for (int64_t c : {1, 5, 37}) {  // decode, a small batch (GEMV path) and a prefill chunk (GEMM path)
      const auto x = random_rows(c, H, unsigned(c));
      MoeBlock block(f.cfg, 64);
      std::vector<float> y(size_t(c * H));
      block.forward(*ctx, f.w, x.data(), c, y.data());
      for (int64_t r = 0; r < c; ++r) {
        const auto want = moe_ref(f, x.data() + r * H);
        for (int64_t h = 0; h < H; ++h) {
          ASSERT_NEAR(y[size_t(r * H + h)], want[size_t(h)], 1e-4 * (1 + std::fabs(want[size_t(h)])))
              << "c=" << c << " row " << r << " col " << h;
        }
      }
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Isa, MoeBlockTest,
                         ::testing::Combine(::testing::ValuesIn(test::isa_levels()), ::testing::Values(1, 2)));

TEST(MoeBlock, CountsDistinctExpertsOncePerForward) {
  const Fixture f(false, false);
  const int64_t H = f.cfg.hidden_size, c = 16;
  const auto x = random_rows(c, H, 3);
  ThreadPool pool(1);
  ExecContext ctx(pool, CpuFeatures::detect());
  MoeBlock block(f.cfg, c);
  std::vector<float> y(size_t(c * H));
  block.forward(ctx, f.w, x.data(), c, y.data());
  // The experts any row chose, from the router alone.
  std::set<int> chosen;
  for (int64_t r = 0; r < c; ++r) {
    std::vector<float> logits(8);
    for (int e = 0; e < 8; ++e) logits[size_t(e)] = float(dot(static_cast<const float*>(f.w.router.data) + e * H, x.data() + r * H, H));
    std::vector<int32_t> idx(3);
    std::vector<float> wt(3);
    MoeRouteScratch s;
    moe_route(f.cfg.moe, logits.data(), nullptr, 1, idx.data(), wt.data(), s);
    chosen.insert(idx.begin(), idx.end());
  }
  EXPECT_EQ(block.counters().forwards, 1);
  EXPECT_EQ(block.counters().rows, c);
  EXPECT_EQ(block.counters().routed_pairs, c * 3);
  EXPECT_EQ(block.counters().expert_passes, int64_t(chosen.size()));
}

// Decode rows through the grouped expert GEMVs give bitwise the same output on 1 thread as on 2 or 3,
// with the rows handed out dynamically or split statically (ExecContext's ColumnSplit): experts large
// enough that every matrix is cut into several items.
TEST(MoeBlock, OutputDoesNotDependOnTheThreadSplit) {
  const Fixture f(false, true, /*hidden=*/512, /*inter=*/512);
  const int64_t H = f.cfg.hidden_size;
  for (int64_t c : {1, 4}) {
    const auto x = random_rows(c, H, unsigned(20 + c));
    std::vector<float> want(size_t(c * H));
    {
      ThreadPool one(1);
      ExecContext ctx(one, CpuFeatures::detect());
      MoeBlock block(f.cfg, c);
      block.forward(ctx, f.w, x.data(), c, want.data());
    }
    for (int threads : {2, 3}) {
      for (ColumnSplit split : {ColumnSplit::kDynamic, ColumnSplit::kStatic}) {
        ThreadPool pool(threads);
        ExecContext ctx(pool, CpuFeatures::detect());
        ctx.set_column_split(split);
        MoeBlock block(f.cfg, c);
        std::vector<float> got(size_t(c * H), -1.f);
        block.forward(ctx, f.w, x.data(), c, got.data());
        ASSERT_EQ(0, std::memcmp(want.data(), got.data(), got.size() * sizeof(float)))
            << "c=" << c << " threads=" << threads << (split == ColumnSplit::kDynamic ? " dynamic" : " static");
      }
    }
  }
}

// int8 per-channel experts (the quantized kernels behind the same matmul front door) stay within
// int8 rounding of the dense result.
TEST(MoeBlock, QuantizedExpertsRunOnExistingKernels) {
  Fixture f(true, false);
  const int64_t H = f.cfg.hidden_size, c = 6;
  const auto x = random_rows(c, H, 11);
  ThreadPool pool(2);
  ExecContext ctx(pool, CpuFeatures::detect());
  MoeBlock block(f.cfg, c);
  std::vector<float> dense(size_t(c * H)), quant(size_t(c * H));
  block.forward(ctx, f.w, x.data(), c, dense.data());
  WeightArena arena;
  for (int bits : {8, 4}) {
    MoeWeights q = f.w;
    for (ExpertMlp& e : q.experts) {
      for (WeightMatrix* m : {&e.gate, &e.up, &e.down}) {
        auto r = quantize_dense_for_kernels(*m, bits, bits == 4 ? 32 : 0, arena, "expert");
        ASSERT_TRUE(r.is_ok()) << r.status().message();
        *m = *r;
      }
    }
    block.forward(ctx, q, x.data(), c, quant.data());
    double err = 0, norm = 0;
    for (size_t i = 0; i < dense.size(); ++i) {
      err += (dense[i] - quant[i]) * double(dense[i] - quant[i]);
      norm += double(dense[i]) * dense[i];
    }
    EXPECT_LT(std::sqrt(err / norm), bits == 8 ? 0.02 : 0.25) << "int" << bits;
    EXPECT_GT(std::sqrt(err / norm), 0.0) << "int" << bits << ": the quantized experts were not used";
  }
}

}  // namespace
}  // namespace tern
