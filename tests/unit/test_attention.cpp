#include <cmath>
#include <limits>

#include "op_test_util.h"
#include "ops/attention.h"

namespace tern::test {
namespace {

struct Case {
  int head_dim, n_heads, n_kv_heads;
  int64_t n_q, q_pos0;
  int window = 0;
  float softcap = 0.f;
  float q_range = 1.f;     // larger → peakier softmax (stability check)
  int64_t extra_kv = 0;    // cache rows past the last query position (must be ignored)
};

// Straightforward attention in double: per query head, the visible keys' scores, softmax, P·V.
std::vector<double> reference(const Case& c, const std::vector<float>& q, const std::vector<float>& k,
                              const std::vector<float>& v, float scale) {
  const int D = c.head_dim, G = c.n_heads / c.n_kv_heads;
  std::vector<double> out(size_t(c.n_q * c.n_heads * D), 0.0);
  for (int64_t i = 0; i < c.n_q; ++i) {
    const int64_t p = c.q_pos0 + i;
    const int64_t t0 = c.window > 0 ? std::max<int64_t>(0, p - c.window + 1) : 0;
    for (int h = 0; h < c.n_heads; ++h) {
      const int g = h / G;
      const float* qr = &q[size_t((i * c.n_heads + h) * D)];
      std::vector<double> s;
      double mx = -INFINITY;
      for (int64_t t = t0; t <= p; ++t) {
        const float* kr = &k[size_t((t * c.n_kv_heads + g) * D)];
        double dot = 0;
        for (int d = 0; d < D; ++d) dot += double(qr[d]) * kr[d];
        double sc = dot * scale;
        if (c.softcap > 0) sc = c.softcap * std::tanh(sc / c.softcap);
        s.push_back(sc);
        mx = std::max(mx, sc);
      }
      double sum = 0;
      for (double& x : s) sum += (x = std::exp(x - mx));
      double* o = &out[size_t((i * c.n_heads + h) * D)];
      for (int64_t t = t0; t <= p; ++t) {
        const float* vr = &v[size_t((t * c.n_kv_heads + g) * D)];
        const double w = s[size_t(t - t0)] / sum;
        for (int d = 0; d < D; ++d) o[d] += w * vr[d];
      }
    }
  }
  return out;
}

void run_case(ExecContext& ctx, const Case& c) {
  const int D = c.head_dim;
  const int64_t n_kv = c.q_pos0 + c.n_q + c.extra_kv;
  const uint32_t seed = uint32_t(D * 1000 + c.n_q * 7 + c.q_pos0);
  const auto q = random_floats(size_t(c.n_q * c.n_heads * D), -c.q_range, c.q_range, seed);
  auto k = random_floats(size_t(n_kv * c.n_kv_heads * D), -1.f, 1.f, seed + 1);
  auto v = random_floats(size_t(n_kv * c.n_kv_heads * D), -1.f, 1.f, seed + 2);
  const float scale = 1.f / std::sqrt(float(D));
  const auto want = reference(c, q, k, v, scale);
  // Keys no query may see are poisoned: reading one would turn outputs into NaN.
  const int64_t first_visible = c.window > 0 ? std::max<int64_t>(0, c.q_pos0 - c.window + 1) : 0;
  const int64_t last_visible = c.q_pos0 + c.n_q - 1;
  for (int64_t t = 0; t < n_kv; ++t) {
    if (t >= first_visible && t <= last_visible) continue;
    for (int64_t j = 0; j < int64_t(c.n_kv_heads) * D; ++j) {
      k[size_t(t * c.n_kv_heads * D + j)] = NAN;
      v[size_t(t * c.n_kv_heads * D + j)] = NAN;
    }
  }
  std::vector<float> out(want.size(), NAN);
  AttentionShape shape;
  shape.n_heads = c.n_heads;
  shape.n_kv_heads = c.n_kv_heads;
  shape.head_dim = D;
  shape.scale = scale;
  shape.sliding_window = c.window;
  shape.softcap = c.softcap;
  attention(ctx, shape, q.data(), c.n_q, c.q_pos0, k.data(), v.data(), n_kv, out.data());
  double max_ref = 0, max_err = 0;
  size_t worst = 0;
  for (size_t i = 0; i < want.size(); ++i) {
    ASSERT_TRUE(std::isfinite(out[i])) << "output " << i << " not finite";
    max_ref = std::max(max_ref, std::abs(want[i]));
    const double err = std::abs(out[i] - want[i]);
    if (err > max_err) max_err = err, worst = i;
  }
  EXPECT_LE(max_err, 1e-5 * max_ref) << "D=" << D << " heads=" << c.n_heads << "/" << c.n_kv_heads
                                     << " n_q=" << c.n_q << " pos0=" << c.q_pos0 << " W=" << c.window
                                     << " cap=" << c.softcap << " worst index " << worst;
}

using AttentionTest = IsaThreads;

TEST_P(AttentionTest, DecodeSingleQuery) {
  for (const Case& c : {Case{64, 4, 4, 1, 0}, Case{64, 8, 2, 1, 200}, Case{128, 8, 1, 1, 130}, Case{16, 2, 1, 1, 77},
                        Case{32, 32, 8, 1, 1000, 0, 0.f, 1.f, 5}, Case{64, 8, 2, 1, 3000, 1500},
                        Case{64, 8, 2, 3, 900}, Case{32, 4, 2, 4, 700, 300, 20.f, 3.f}})
    run_case(*ctx, c);
}

// Decode splits the keys over threads (split-K) and merges the partial softmax states; with four
// threads the chunks are uneven and one may see only masked keys of some rows.
TEST_P(AttentionTest, SplitKeyDecodeWithFourThreads) {
  ThreadPool pool4(4);
  ExecContext ctx4(pool4, ctx->cpu());
  for (const Case& c : {Case{64, 8, 2, 1, 2100}, Case{16, 4, 1, 4, 1300, 1030}, Case{128, 2, 2, 2, 1025, 0, 0.f, 8.f}})
    run_case(ctx4, c);
}

TEST_P(AttentionTest, PrefillCausalGqaRatios) {
  for (const Case& c : {Case{16, 4, 2, 7, 0}, Case{32, 8, 2, 7, 5}, Case{64, 8, 1, 64, 0}, Case{128, 4, 1, 64, 17},
                        Case{64, 4, 2, 300, 0}, Case{32, 8, 8, 300, 40, 0, 0.f, 1.f, 3}, Case{16, 8, 1, 300, 0}})
    run_case(*ctx, c);
}

TEST_P(AttentionTest, SlidingWindow) {
  for (const Case& c : {Case{64, 4, 2, 300, 0, 64}, Case{32, 4, 1, 1, 500, 100}, Case{16, 2, 1, 64, 90, 16},
                        Case{128, 8, 4, 7, 100, 1}, Case{32, 4, 4, 70, 30, 65, 0.f, 1.f, 9}})
    run_case(*ctx, c);
}

TEST_P(AttentionTest, SoftcapAndPeakyScores) {
  for (const Case& c : {Case{64, 4, 2, 64, 10, 0, 50.f, 30.f}, Case{128, 8, 4, 7, 100, 32, 30.f, 10.f},
                        Case{32, 4, 1, 1, 300, 0, 5.f, 4.f}, Case{64, 4, 2, 64, 10, 0, 0.f, 30.f}})
    run_case(*ctx, c);
}

TEST_P(AttentionTest, HeadDimNotMultipleOfEightUsesScalarPath) {
  for (const Case& c : {Case{20, 2, 1, 7, 3}, Case{12, 4, 2, 33, 0, 8}}) run_case(*ctx, c);
}

TERN_INSTANTIATE_ISA_THREADS(AttentionTest);

}  // namespace
}  // namespace tern::test
