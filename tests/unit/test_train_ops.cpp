// Every training op's backward against central finite differences of its forward (small shapes),
// under each ISA level and 1 or 2 threads; the linear layer also against a naive product at a shape
// that takes the GEMM path.
#include <gtest/gtest.h>

#include <cmath>

#include "op_test_util.h"
#include "train/train_attention.h"
#include "train/train_linear.h"
#include "train/train_loss.h"
#include "train/train_norm.h"
#include "train/train_pointwise.h"
#include "train_test_util.h"

namespace tern {
namespace {

using test::dot;
using test::expect_grad_matches;
using test::random_floats;

struct TrainOps : test::IsaThreads {};

TEST_P(TrainOps, LinearBackwardMatchesFiniteDifferences) {
  const int64_t m = 5, in = 7, out = 6;
  auto x = random_floats(size_t(m * in), -1, 1, 1);
  auto w = random_floats(size_t(out * in), -1, 1, 2);
  auto r = random_floats(size_t(m * out), -1, 1, 3);
  std::vector<float> y(size_t(m * out)), dx(size_t(m * in), 5.f), dw(size_t(out * in), 0.f);
  train::LinearScratch s;
  train::linear_backward(*ctx, r.data(), x.data(), m, w.data(), out, in, dx.data(), false, dw.data(), s);
  auto loss = [&] {
    train::linear_forward(*ctx, x.data(), m, w.data(), out, in, y.data());
    return dot(y, r);
  };
  expect_grad_matches("dx", x, dx, loss);
  expect_grad_matches("dw", w, dw, loss);
}

// m, in, out past the GEMV and small-m limits: the products run on the packed GEMM kernels.
TEST_P(TrainOps, LinearBackwardMatchesNaiveProductsOnTheGemmPath) {
  const int64_t m = 97, in = 70, out = 83;
  auto x = random_floats(size_t(m * in), -1, 1, 4);
  auto w = random_floats(size_t(out * in), -1, 1, 5);
  auto dy = random_floats(size_t(m * out), -1, 1, 6);
  std::vector<float> dx(size_t(m * in), 1.f), dw(size_t(out * in), 1.f);  // dx accumulates onto 1, dw too
  train::LinearScratch s;
  train::linear_backward(*ctx, dy.data(), x.data(), m, w.data(), out, in, dx.data(), true, dw.data(), s);
  for (int64_t i = 0; i < m; ++i)
    for (int64_t j = 0; j < in; ++j) {
      double ref = 1;
      for (int64_t o = 0; o < out; ++o) ref += double(dy[size_t(i * out + o)]) * w[size_t(o * in + j)];
      ASSERT_NEAR(dx[size_t(i * in + j)], ref, 1e-4 * out) << i << "," << j;
    }
  for (int64_t o = 0; o < out; ++o)
    for (int64_t j = 0; j < in; ++j) {
      double ref = 1;
      for (int64_t i = 0; i < m; ++i) ref += double(dy[size_t(i * out + o)]) * x[size_t(i * in + j)];
      ASSERT_NEAR(dw[size_t(o * in + j)], ref, 1e-4 * m) << o << "," << j;
    }
}

TEST_P(TrainOps, RmsNormBackwardMatchesFiniteDifferences) {
  const int64_t m = 4, n = 9;
  auto x = random_floats(size_t(m * n), -2, 2, 7);
  auto w = random_floats(size_t(n), 0.5, 1.5, 8);
  auto r = random_floats(size_t(m * n), -1, 1, 9);
  std::vector<float> y(size_t(m * n)), rstd(static_cast<size_t>(m)), dx(size_t(m * n), 0.f), dw(size_t(n), 0.f), partial;
  train::rms_norm_forward(*ctx, x.data(), m, n, w.data(), 1e-5, y.data(), rstd.data());
  train::rms_norm_backward(*ctx, r.data(), x.data(), rstd.data(), m, n, w.data(), dx.data(), dw.data(), partial);
  auto loss = [&] {
    train::rms_norm_forward(*ctx, x.data(), m, n, w.data(), 1e-5, y.data(), rstd.data());
    return dot(y, r);
  };
  expect_grad_matches("dx", x, dx, loss, 36, 1e-3f);
  expect_grad_matches("dw", w, dw, loss, 36, 1e-3f);
}

TEST_P(TrainOps, SwigluBackwardMatchesFiniteDifferences) {
  const int64_t m = 3, n = 11;
  auto g = random_floats(size_t(m * n), -4, 4, 10);
  auto u = random_floats(size_t(m * n), -2, 2, 11);
  auto r = random_floats(size_t(m * n), -1, 1, 12);
  std::vector<float> s(size_t(m * n)), dg(size_t(m * n)), du(size_t(m * n));
  train::swiglu_backward(*ctx, r.data(), g.data(), u.data(), m, n, dg.data(), du.data());
  auto loss = [&] {
    train::swiglu_forward(*ctx, g.data(), u.data(), m, n, s.data());
    return dot(s, r);
  };
  expect_grad_matches("dg", g, dg, loss, 33, 1e-3f);
  expect_grad_matches("du", u, du, loss, 33, 1e-3f);
}

TEST_P(TrainOps, RopeBackwardMatchesFiniteDifferences) {
  const int64_t m = 6;
  const int heads = 2, d = 8;
  std::vector<float> inv_freq = {1.f, 0.3f, 0.05f, 0.01f};
  std::vector<int32_t> pos = {0, 1, 2, 7, 40, 300}, neg;
  auto x = random_floats(size_t(m * heads * d), -1, 1, 13);
  auto r = random_floats(x.size(), -1, 1, 14);
  std::vector<float> dx = r;
  train::rope_backward(*ctx, dx.data(), m, heads, d, pos.data(), inv_freq, neg);
  auto loss = [&] {
    std::vector<float> y = x;
    train::rope_forward(*ctx, y.data(), m, heads, d, pos.data(), inv_freq);
    return dot(y, r);
  };
  expect_grad_matches("dx", x, dx, loss, 40, 1e-2f);
}

TEST_P(TrainOps, EmbeddingBackwardAddsRowsOfRepeatedIds) {
  const int64_t vocab = 5, hidden = 3;
  auto e = random_floats(size_t(vocab * hidden), -1, 1, 15);
  std::vector<int32_t> ids = {2, 0, 2, 4};
  auto r = random_floats(ids.size() * size_t(hidden), -1, 1, 16);
  std::vector<float> x(r.size()), de(e.size(), 0.f);
  train::embedding_backward(r.data(), hidden, ids.data(), int64_t(ids.size()), de.data());
  auto loss = [&] {
    train::embedding_forward(*ctx, e.data(), hidden, ids.data(), int64_t(ids.size()), x.data());
    return dot(x, r);
  };
  expect_grad_matches("dembed", e, de, loss);
}

// Reference: the softmax of each causal score row written out in full.
void naive_attention(const train::AttentionShape& s, const std::vector<float>& q, const std::vector<float>& k,
                     const std::vector<float>& v, std::vector<float>& o) {
  const int d = s.head_dim, rep = s.n_heads / s.n_kv_heads;
  for (int64_t b = 0; b < s.batch; ++b)
    for (int h = 0; h < s.n_heads; ++h)
      for (int64_t i = 0; i < s.seq; ++i) {
        std::vector<double> p(size_t(i + 1));
        double mx = -1e30, sum = 0;
        for (int64_t j = 0; j <= i; ++j) {
          double acc = 0;
          for (int c = 0; c < d; ++c)
            acc += double(q[size_t(((b * s.seq + i) * s.n_heads + h) * d + c)]) *
                   k[size_t(((b * s.seq + j) * s.n_kv_heads + h / rep) * d + c)];
          p[size_t(j)] = acc * s.scale;
          mx = std::max(mx, p[size_t(j)]);
        }
        for (auto& e : p) sum += (e = std::exp(e - mx));
        for (int c = 0; c < d; ++c) {
          double acc = 0;
          for (int64_t j = 0; j <= i; ++j) acc += p[size_t(j)] / sum * v[size_t(((b * s.seq + j) * s.n_kv_heads + h / rep) * d + c)];
          o[size_t(((b * s.seq + i) * s.n_heads + h) * d + c)] = float(acc);
        }
      }
}

TEST_P(TrainOps, AttentionForwardMatchesNaiveSoftmaxAndBackwardMatchesFiniteDifferences) {
  train::AttentionShape s{2, 5, 4, 2, 4, 0.5f};
  const size_t nq = size_t(s.batch * s.seq * s.n_heads * s.head_dim), nk = size_t(s.batch * s.seq * s.n_kv_heads * s.head_dim);
  auto q = random_floats(nq, -1.5, 1.5, 17);
  auto k = random_floats(nk, -1.5, 1.5, 18);
  auto v = random_floats(nk, -1, 1, 19);
  auto r = random_floats(nq, -1, 1, 20);
  std::vector<float> o(nq), ref(nq), lse(size_t(s.batch * s.seq * s.n_heads)), dq(nq), dk(nk), dv(nk);
  train::attention_forward(*ctx, s, q.data(), k.data(), v.data(), o.data(), lse.data());
  naive_attention(s, q, k, v, ref);
  for (size_t i = 0; i < nq; ++i) ASSERT_NEAR(o[i], ref[i], 1e-5) << i;
  train::attention_backward(*ctx, s, q.data(), k.data(), v.data(), o.data(), lse.data(), r.data(), dq.data(), dk.data(), dv.data());
  auto loss = [&] {
    train::attention_forward(*ctx, s, q.data(), k.data(), v.data(), o.data(), lse.data());
    return dot(o, r);
  };
  expect_grad_matches("dq", q, dq, loss, 40, 1e-2f);
  expect_grad_matches("dk", k, dk, loss, 40, 1e-2f);
  expect_grad_matches("dv", v, dv, loss, 40, 1e-2f);
}

TERN_INSTANTIATE_ISA_THREADS(TrainOps);

// The loss: cross-entropy, full KL, top-k KL with its rest bucket, and mixtures; the gradient it writes
// over the logits against finite differences of the summed loss.
struct LossCase {
  int64_t k;     // 0: no teacher; == vocab: full vocabulary; else top-k
  double alpha;
};

class TrainLoss : public ::testing::TestWithParam<LossCase> {};

TEST_P(TrainLoss, GradientMatchesFiniteDifferences) {
  ThreadPool pool(2);
  ExecContext ctx(pool, CpuFeatures::detect());
  const int64_t m = 3, vocab = 9;
  const LossCase c = GetParam();
  auto z = random_floats(size_t(m * vocab), -3, 3, 21);
  std::vector<int32_t> targets = {4, 0, 8};
  auto tl = random_floats(size_t(m * vocab), -3, 3, 22);
  std::vector<float> full(size_t(m * vocab)), logp, rest(static_cast<size_t>(m));
  std::vector<int32_t> ids, order(static_cast<size_t>(vocab));
  for (int64_t r = 0; r < m; ++r) train::teacher_log_probs(tl.data() + r * vocab, vocab, full.data() + r * vocab);
  train::TeacherRows t;
  if (c.k == vocab) {
    t = {vocab, nullptr, full.data(), nullptr};
  } else if (c.k > 0) {
    ids.resize(size_t(m * c.k));
    logp.resize(size_t(m * c.k));
    for (int64_t r = 0; r < m; ++r)
      train::teacher_top_k(full.data() + r * vocab, vocab, c.k, ids.data() + r * c.k, logp.data() + r * c.k, &rest[size_t(r)], order.data());
    t = {c.k, ids.data(), logp.data(), rest.data()};
  }
  const train::TeacherRows* tp = c.k > 0 ? &t : nullptr;
  auto loss = [&] {
    std::vector<float> zz = z;
    const auto s = train::loss_and_grad(ctx, zz.data(), m, vocab, targets.data(), tp, c.alpha, 1.f);
    return c.alpha * s.kl + (1 - c.alpha) * s.ce;
  };
  std::vector<float> g = z;
  train::loss_and_grad(ctx, g.data(), m, vocab, targets.data(), tp, c.alpha, 1.f);
  expect_grad_matches("dlogits", z, g, loss, 27, 1e-3f, 1e-4, 1e-2);
}

INSTANTIATE_TEST_SUITE_P(Cases, TrainLoss,
                         ::testing::Values(LossCase{0, 0.0}, LossCase{9, 1.0}, LossCase{9, 0.5}, LossCase{3, 1.0},
                                           LossCase{3, 0.3}, LossCase{1, 1.0}));

// With k = vocab the top-k form (every token, empty rest) gives the full KL.
TEST(TrainLossKl, TopKOverTheWholeVocabularyEqualsTheFullKl) {
  ThreadPool pool(1);
  ExecContext ctx(pool, CpuFeatures::detect());
  const int64_t vocab = 7;
  auto z = random_floats(size_t(vocab), -2, 2, 23);
  auto tl = random_floats(size_t(vocab), -2, 2, 24);
  std::vector<float> full(static_cast<size_t>(vocab)), logp(static_cast<size_t>(vocab)), z1 = z, z2 = z;
  std::vector<int32_t> ids(static_cast<size_t>(vocab)), order(static_cast<size_t>(vocab));
  float rest = 0;
  int32_t tgt = 1;
  train::teacher_log_probs(tl.data(), vocab, full.data());
  train::teacher_top_k(full.data(), vocab, vocab, ids.data(), logp.data(), &rest, order.data());
  EXPECT_TRUE(std::isinf(rest) || std::exp(rest) < 1e-6);
  train::TeacherRows a{vocab, nullptr, full.data(), nullptr}, b{vocab, ids.data(), logp.data(), &rest};
  const auto sa = train::loss_and_grad(ctx, z1.data(), 1, vocab, &tgt, &a, 1.0, 1.f);
  const auto sb = train::loss_and_grad(ctx, z2.data(), 1, vocab, &tgt, &b, 1.0, 1.f);
  EXPECT_NEAR(sa.kl, sb.kl, 1e-6);
  EXPECT_GT(sa.kl, 0);
  for (int64_t j = 0; j < vocab; ++j) EXPECT_NEAR(z1[size_t(j)], z2[size_t(j)], 1e-6);
}

}  // namespace
}  // namespace tern
