// KL divergence / top-1 agreement against recorded base distributions, and the base-logits file.
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <random>

#include "eval/kl_divergence.h"
#include "test_support.h"

namespace tern {
namespace {

std::vector<float> random_logits(int64_t rows, int64_t vocab, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> d(0.0f, 3.0f);
  std::vector<float> v(size_t(rows * vocab));
  for (auto& x : v) x = d(rng);
  return v;
}

double exact_kl(const float* p, const float* q, int64_t vocab) {
  auto lse = [&](const float* l) {
    double mx = l[0], s = 0;
    for (int64_t i = 1; i < vocab; ++i) mx = std::max(mx, double(l[i]));
    for (int64_t i = 0; i < vocab; ++i) s += std::exp(double(l[i]) - mx);
    return mx + std::log(s);
  };
  const double zp = lse(p), zq = lse(q);
  double kl = 0;
  for (int64_t i = 0; i < vocab; ++i) kl += std::exp(p[i] - zp) * ((p[i] - zp) - (q[i] - zq));
  return kl;
}

TEST(KlDivergence, SelfIsZeroAndFullTopKIsExact) {
  const int64_t rows = 20, vocab = 50;
  const auto base = random_logits(rows, vocab, 1);
  auto other = base;
  std::mt19937 rng(2);
  std::normal_distribution<float> d(0.0f, 0.5f);
  for (auto& x : other) x += d(rng);
  std::vector<int32_t> targets(size_t(rows), 3);

  BaseLogits b;
  BaseLogitsRecorder rec(b, vocab, int(vocab));
  rec.add(base.data(), rows, targets.data());
  ASSERT_EQ(b.positions(), rows);

  KlAccumulator same(b);
  ASSERT_TRUE(same.add(base.data(), rows, vocab).is_ok());
  auto r = same.finish();
  ASSERT_TRUE(r.is_ok());
  EXPECT_NEAR(r->kl_mean, 0.0, 1e-6);
  EXPECT_EQ(r->top1, 1.0);

  KlAccumulator diff(b);
  ASSERT_TRUE(diff.add(other.data(), 10, vocab).is_ok());  // in two pieces, as perplexity() delivers them
  ASSERT_TRUE(diff.add(other.data() + 10 * vocab, 10, vocab).is_ok());
  auto r2 = diff.finish();
  ASSERT_TRUE(r2.is_ok());
  double mean = 0;
  for (int64_t i = 0; i < rows; ++i) mean += exact_kl(base.data() + i * vocab, other.data() + i * vocab, vocab);
  mean /= double(rows);
  EXPECT_GT(r2->kl_mean, 0.01);
  EXPECT_NEAR(r2->kl_mean, mean, 1e-5);
  EXPECT_LE(r2->kl_median, r2->kl_p99);
  EXPECT_LE(r2->kl_p99, r2->kl_max);
  EXPECT_LT(r2->top1, 1.0 + 1e-12);
}

TEST(KlDivergence, TopKIsALowerBound) {
  const int64_t rows = 16, vocab = 200;
  const auto base = random_logits(rows, vocab, 3), other = random_logits(rows, vocab, 4);
  std::vector<int32_t> targets(size_t(rows), 0);
  BaseLogits b;
  BaseLogitsRecorder rec(b, vocab, 8);
  rec.add(base.data(), rows, targets.data());
  KlAccumulator acc(b);
  ASSERT_TRUE(acc.add(other.data(), rows, vocab).is_ok());
  auto r = acc.finish();
  ASSERT_TRUE(r.is_ok());
  double mean = 0;
  for (int64_t i = 0; i < rows; ++i) mean += exact_kl(base.data() + i * vocab, other.data() + i * vocab, vocab);
  mean /= double(rows);
  EXPECT_GT(r->kl_mean, 0.0);
  EXPECT_LE(r->kl_mean, mean + 1e-9);
}

TEST(KlDivergence, MismatchesAreErrors) {
  const int64_t vocab = 10;
  const auto base = random_logits(4, vocab, 5);
  std::vector<int32_t> targets(4, 1);
  BaseLogits b;
  BaseLogitsRecorder rec(b, vocab, 4);
  rec.add(base.data(), 4, targets.data());
  KlAccumulator a(b);
  EXPECT_FALSE(a.add(base.data(), 4, vocab + 1).is_ok());   // other vocabulary
  EXPECT_FALSE(a.add(base.data(), 5, vocab).is_ok());       // more rows than recorded
  ASSERT_TRUE(a.add(base.data(), 3, vocab).is_ok());
  EXPECT_FALSE(a.finish().is_ok());                          // fewer rows than recorded
}

TEST(KlDivergence, FileRoundTripAndBadFiles) {
  const int64_t rows = 6, vocab = 30;
  const auto base = random_logits(rows, vocab, 6);
  std::vector<int32_t> targets(size_t(rows), 2);
  BaseLogits b;
  BaseLogitsRecorder rec(b, vocab, 5);
  rec.add(base.data(), rows, targets.data());
  b.ctx = 64, b.windows = 1, b.tokens_hash = hash_tokens({1, 2, 3});
  test::TempDir dir;
  ASSERT_TRUE(save_base_logits(b, dir.file("base.logits")).is_ok());
  auto l = load_base_logits(dir.file("base.logits"));
  ASSERT_TRUE(l.is_ok()) << l.status().message();
  EXPECT_EQ(l->k, 5u);
  EXPECT_EQ(l->ids, b.ids);
  EXPECT_EQ(l->logp, b.logp);
  EXPECT_EQ(l->rest_logp.size(), b.rest_logp.size());
  EXPECT_EQ(l->tokens_hash, b.tokens_hash);
  EXPECT_DOUBLE_EQ(l->base_ppl(), b.base_ppl());
  EXPECT_NE(hash_tokens({1, 2, 3}), hash_tokens({1, 3, 2}));

  std::ifstream in(dir.file("base.logits"), std::ios::binary);
  std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  test::write_file(dir.file("short"), bytes.substr(0, bytes.size() - 3));
  EXPECT_FALSE(load_base_logits(dir.file("short")).is_ok());
  test::write_file(dir.file("header"), bytes.substr(0, 20));
  EXPECT_FALSE(load_base_logits(dir.file("header")).is_ok());
  std::string bad = bytes;
  bad[0] = 'X';
  test::write_file(dir.file("magic"), bad);
  EXPECT_FALSE(load_base_logits(dir.file("magic")).is_ok());
  EXPECT_FALSE(load_base_logits(dir.file("missing")).is_ok());
}

}  // namespace
}  // namespace tern
