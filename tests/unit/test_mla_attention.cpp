// MLA block: the absorbed form (what tern runs: the pool holds only the latent c_kv and the rope key
// k_pe per token) against the expanded form (per-head K and V rebuilt from the latent through kv_b,
// ordinary attention), on random weights, computed independently here in double precision; and the
// pool's storage of kv_lora_rank + qk_rope_head_dim values per token per layer.
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

#include "core/thread_pool.h"
#include "kv/paged_kv_cache.h"
#include "model/blocks/mla_attention.h"

namespace tern::test {
namespace {

struct Dims {
  int hidden = 48, H = 4, q_rank = 24, R = 32, N = 16, P = 8, V = 24;
};

ModelConfig mla_config(const Dims& d, bool interleave) {
  ModelConfig c;
  c.hidden_size = d.hidden;
  c.n_layers = 1;
  c.n_heads = c.n_kv_heads = d.H;
  c.head_dim = d.P;
  c.rms_norm_eps = 1e-6;
  c.rope.theta = 10000.0;
  c.rope.rotary_dim = d.P;
  c.mla.q_lora_rank = d.q_rank;
  c.mla.kv_lora_rank = d.R;
  c.mla.qk_nope_head_dim = d.N;
  c.mla.qk_rope_head_dim = d.P;
  c.mla.v_head_dim = d.V;
  c.mla.rope_interleave = interleave;
  c.mla.softmax_scale = 1.0 / std::sqrt(double(d.N + d.P));
  return c;
}

struct Matrix {
  std::vector<float> v;
  int64_t rows, cols;
  WeightMatrix view() const { return WeightMatrix{v.data(), DType::F32, rows, cols}; }
  double at(int64_t r, int64_t c) const { return v[size_t(r * cols + c)]; }
};

Matrix random_matrix(std::mt19937& g, int64_t rows, int64_t cols) {
  std::uniform_real_distribution<float> u(-1.f, 1.f);
  Matrix m{std::vector<float>(size_t(rows * cols)), rows, cols};
  const float s = 1.f / std::sqrt(float(cols));
  for (float& x : m.v) x = u(g) * s;
  return m;
}

struct RandomMla {
  Matrix q_a, q_b, kv_a, kv_b, o;
  std::vector<float> q_a_norm, kv_a_norm;
  MlaWeights w;

  RandomMla(const ModelConfig& cfg, const Dims& d, uint32_t seed) {
    std::mt19937 g(seed);
    q_a = random_matrix(g, d.q_rank, d.hidden);
    q_b = random_matrix(g, int64_t(d.H) * (d.N + d.P), d.q_rank);
    kv_a = random_matrix(g, d.R + d.P, d.hidden);
    kv_b = random_matrix(g, int64_t(d.H) * (d.N + d.V), d.R);
    o = random_matrix(g, d.hidden, int64_t(d.H) * d.V);
    std::uniform_real_distribution<float> u(0.5f, 1.5f);
    for (int i = 0; i < d.q_rank; ++i) q_a_norm.push_back(u(g));
    for (int i = 0; i < d.R; ++i) kv_a_norm.push_back(u(g));
    w.q_a = q_a.view(), w.q_b = q_b.view(), w.kv_a = kv_a.view(), w.kv_b = kv_b.view(), w.o = o.view();
    w.q_a_norm = q_a_norm, w.kv_a_norm = kv_a_norm;
    absorb_kv_b(cfg, &w);
  }
};

std::vector<double> linear(const Matrix& m, const std::vector<double>& x) {
  std::vector<double> y(size_t(m.rows), 0.0);
  for (int64_t r = 0; r < m.rows; ++r)
    for (int64_t c = 0; c < m.cols; ++c) y[size_t(r)] += m.at(r, c) * x[size_t(c)];
  return y;
}

void rms(std::vector<double>& x, size_t n, const std::vector<float>& w, double eps) {
  double ss = 0;
  for (size_t i = 0; i < n; ++i) ss += x[i] * x[i];
  const double inv = 1.0 / std::sqrt(ss / double(n) + eps);
  for (size_t i = 0; i < n; ++i) x[i] = x[i] * inv * w[i];
}

// transformers: (interleave: view [P/2, 2], transpose) then x·cos + rotate_half(x)·sin, angle pos·inv_freq.
std::vector<double> rope_ref(const float* x, int P, int pos, double theta, bool interleave) {
  std::vector<double> v(static_cast<size_t>(P));
  for (int j = 0; j < P / 2; ++j) {
    v[size_t(j)] = interleave ? x[2 * j] : x[j];
    v[size_t(P / 2 + j)] = interleave ? x[2 * j + 1] : x[P / 2 + j];
  }
  std::vector<double> out(static_cast<size_t>(P));
  for (int j = 0; j < P / 2; ++j) {
    const double a = pos * std::pow(theta, -2.0 * j / P);
    out[size_t(j)] = v[size_t(j)] * std::cos(a) - v[size_t(P / 2 + j)] * std::sin(a);
    out[size_t(P / 2 + j)] = v[size_t(P / 2 + j)] * std::cos(a) + v[size_t(j)] * std::sin(a);
  }
  return out;
}

// The expanded reference: per-head K = (W_UK[h] c_kv | k_pe), V = W_UV[h] c_kv, causal softmax.
// x: [T, hidden]; returns [T, hidden] and the latent rows (normed c_kv | roped k_pe) [T, R + P].
struct Expanded {
  std::vector<std::vector<double>> out, latent;
};
Expanded expanded_reference(const RandomMla& m, const ModelConfig& cfg, const Dims& d, const std::vector<float>& x,
                            int T) {
  const bool il = cfg.mla.rope_interleave;
  std::vector<std::vector<double>> q(static_cast<size_t>(T)), k(static_cast<size_t>(T)), v(static_cast<size_t>(T));
  Expanded e;
  for (int t = 0; t < T; ++t) {
    std::vector<double> xt(x.begin() + int64_t(t) * d.hidden, x.begin() + int64_t(t + 1) * d.hidden);
    std::vector<double> qa = linear(m.q_a, xt);
    rms(qa, qa.size(), m.q_a_norm, cfg.rms_norm_eps);
    std::vector<double> qh = linear(m.q_b, qa);  // [H, N + P]
    std::vector<double> kv = linear(m.kv_a, xt);  // [R + P]
    rms(kv, size_t(d.R), m.kv_a_norm, cfg.rms_norm_eps);
    std::vector<float> kpe_raw(kv.begin() + d.R, kv.end());
    const auto kpe = rope_ref(kpe_raw.data(), d.P, t, cfg.rope.theta, il);
    std::vector<double> ckv(kv.begin(), kv.begin() + d.R);
    std::vector<double> kvb = linear(m.kv_b, ckv);  // [H, N + V]
    std::vector<double> lat = ckv;
    lat.insert(lat.end(), kpe.begin(), kpe.end());
    e.latent.push_back(lat);
    for (int h = 0; h < d.H; ++h) {
      const double* qrow = qh.data() + h * (d.N + d.P);
      std::vector<float> qpe_raw(qrow + d.N, qrow + d.N + d.P);
      const auto qpe = rope_ref(qpe_raw.data(), d.P, t, cfg.rope.theta, il);
      for (int n = 0; n < d.N; ++n) q[size_t(t)].push_back(qrow[n]);
      for (double z : qpe) q[size_t(t)].push_back(z);
      const double* kvh = kvb.data() + h * (d.N + d.V);
      for (int n = 0; n < d.N; ++n) k[size_t(t)].push_back(kvh[n]);
      for (double z : kpe) k[size_t(t)].push_back(z);
      for (int c = 0; c < d.V; ++c) v[size_t(t)].push_back(kvh[d.N + c]);
    }
  }
  const int QK = d.N + d.P;
  for (int t = 0; t < T; ++t) {
    std::vector<double> attn(size_t(d.H * d.V), 0.0);
    for (int h = 0; h < d.H; ++h) {
      std::vector<double> s(size_t(t + 1));
      double mx = -1e300;
      for (int u = 0; u <= t; ++u) {
        double dot = 0;
        for (int c = 0; c < QK; ++c) dot += q[size_t(t)][size_t(h * QK + c)] * k[size_t(u)][size_t(h * QK + c)];
        s[size_t(u)] = dot * cfg.mla.softmax_scale;
        mx = std::max(mx, s[size_t(u)]);
      }
      double sum = 0;
      for (double& z : s) sum += (z = std::exp(z - mx));
      for (int u = 0; u <= t; ++u)
        for (int c = 0; c < d.V; ++c) attn[size_t(h * d.V + c)] += s[size_t(u)] / sum * v[size_t(u)][size_t(h * d.V + c)];
    }
    e.out.push_back(linear(m.o, attn));
  }
  return e;
}

struct Case {
  KvDType dtype;
  int block_size;
  int threads;
  int prompt;     // tokens of the first (prefill) step
  int decode;     // then one token per step
  int max_rows;   // chunk limit of the block: a prompt longer than this goes in pieces
  bool interleave;
  double tol;
};

void run_case(const Case& cs) {
  SCOPED_TRACE(::testing::Message() << "dtype=" << kv_dtype_name(cs.dtype) << " block=" << cs.block_size
                                    << " threads=" << cs.threads << " prompt=" << cs.prompt);
  const Dims d;
  const ModelConfig cfg = mla_config(d, cs.interleave);
  RandomMla m(cfg, d, 1234);
  const int T = cs.prompt + cs.decode;
  std::vector<float> x(size_t(T) * d.hidden);
  std::mt19937 g(99);
  std::normal_distribution<float> nd(0.f, 1.f);
  for (float& z : x) z = nd(g);
  const Expanded ref = expanded_reference(m, cfg, d, x, T);

  PagedKvCache pool(cfg, cs.block_size, cs.dtype);
  // The pool stores one latent row per token per layer: kv_lora_rank + qk_rope_head_dim values.
  EXPECT_EQ(pool.shape(0).values_per_token(), d.R + d.P);
  EXPECT_TRUE(pool.shape(0).v_in_k);
  const int n_blocks = (T + cs.block_size - 1) / cs.block_size;
  ASSERT_TRUE(pool.allocate(n_blocks + 2).is_ok());
  std::vector<int32_t> table;  // a scrambled table: block i of the sequence is pool block n_blocks + 1 - i
  for (int b = 0; b < n_blocks; ++b) table.push_back(n_blocks + 1 - b);

  ThreadPool threads(cs.threads);
  ExecContext ctx(threads, CpuFeatures::detect());
  MlaAttention block(cfg, cs.max_rows);
  std::vector<float> out(size_t(cs.max_rows) * d.hidden);
  std::vector<int32_t> pos(size_t(cs.max_rows));
  double max_err = 0;
  for (int t0 = 0; t0 < T;) {
    const int n = t0 < cs.prompt ? std::min(cs.prompt - t0, cs.max_rows) : 1;
    for (int i = 0; i < n; ++i) pos[size_t(i)] = t0 + i;
    const PagedAttnSeq seq{t0, n, 0, table.data()};
    BlockStep step;
    step.layer = 0;
    step.rows = n;
    step.positions = pos.data();
    step.seqs = &seq;
    step.n_seqs = 1;
    std::vector<float> xn(x.begin() + int64_t(t0) * d.hidden, x.begin() + int64_t(t0 + n) * d.hidden);
    block.forward(ctx, pool, m.w, step, xn.data(), out.data());
    for (int i = 0; i < n; ++i)
      for (int c = 0; c < d.hidden; ++c)
        max_err = std::max(max_err, std::fabs(out[size_t(i * d.hidden + c)] - ref.out[size_t(t0 + i)][size_t(c)]));
    t0 += n;
  }
  EXPECT_LE(max_err, cs.tol);

  // What the pool holds is the latent row itself; its value is the row's first kv_lora_rank values.
  std::vector<float> row(size_t(d.R + d.P)), val(size_t(d.R));
  double lat_err = 0;
  for (int t = 0; t < T; ++t) {
    pool.read_row(0, false, table.data(), t, 0, row.data());
    pool.read_row(0, true, table.data(), t, 0, val.data());
    for (int c = 0; c < d.R + d.P; ++c) lat_err = std::max(lat_err, std::fabs(row[size_t(c)] - ref.latent[size_t(t)][size_t(c)]));
    for (int c = 0; c < d.R; ++c) EXPECT_EQ(val[size_t(c)], row[size_t(c)]);
  }
  EXPECT_LE(lat_err, cs.dtype == KvDType::F32 ? 1e-5 : 0.05);
}

TEST(MlaAttention, AbsorbedEqualsExpanded) {
  // f32 pool, 64-slot blocks: tiles read in place; one prompt step then decode steps.
  run_case({KvDType::F32, 64, 1, 20, 6, 64, true, 2e-5});
  // f32 pool, 16-slot blocks (tiles gathered), rotate-half pairs, prompt in 3 chunks, 2 threads.
  run_case({KvDType::F32, 16, 2, 70, 4, 32, false, 2e-5});
}

TEST(MlaAttention, LongContextSplitDecode) {
  // 600 cached positions with 2 threads: the decode step is split over its keys and merged.
  run_case({KvDType::F32, 16, 2, 600, 2, 256, true, 2e-5});
}

TEST(MlaAttention, Bf16PoolStaysClose) { run_case({KvDType::BF16, 16, 1, 40, 4, 64, true, 2e-2}); }

TEST(MlaAttention, PoolBytesPerToken) {
  const Dims d;
  const ModelConfig cfg = mla_config(d, true);
  for (KvDType t : {KvDType::F32, KvDType::BF16, KvDType::INT8, KvDType::FP8}) {
    PagedKvCache pool(cfg, 16, t);
    const size_t elem = t == KvDType::F32 ? 4 : t == KvDType::BF16 ? 2 : 1;
    const size_t scale = (t == KvDType::INT8 || t == KvDType::FP8) ? 4 : 0;  // one scale per token row
    EXPECT_EQ(pool.bytes_per_token(), size_t(d.R + d.P) * elem + scale) << kv_dtype_name(t);
    EXPECT_EQ(pool.block_bytes(), 16 * pool.bytes_per_token()) << kv_dtype_name(t);
  }
}

}  // namespace
}  // namespace tern::test
