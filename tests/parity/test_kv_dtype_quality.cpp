// What storing the KV cache as bf16, int8 or fp8 costs on a trained model (docs-llama-28m, 384
// tokens of held-out text): next-token distributions against f32 KV, per position. The bounds are
// a few times what was measured (docs/benchmarks.md gives the numbers), tight enough that a wrong
// scale or a mis-rounded code (errors of whole logits) fails.
#include <gtest/gtest.h>

#include <cmath>

#include "text/tokenizer/tokenizer.h"
#include "model_test_util.h"
#include "test_support.h"

namespace tern::test {
namespace {

struct Quality {
  double mean_kl = 0, max_abs = 0, agree = 0;
};

std::vector<float> logits_with(const Model& m, ExecContext& ctx, const std::vector<int32_t>& ids, KvDType dt) {
  const auto& c = m.config();
  const int64_t n = int64_t(ids.size());
  Decoder dec(m, 128);
  SequenceKvCache kv(c, n, dt);
  std::vector<float> hidden(size_t(n * c.hidden_size)), logits(size_t(n * c.vocab_size));
  EXPECT_TRUE(dec.forward(ctx, kv, ids.data(), n, n, hidden.data()).is_ok());
  dec.logits(ctx, hidden.data(), n, logits.data());
  return logits;
}

Quality compare(const std::vector<float>& ref, const std::vector<float>& got, int64_t n, int64_t vocab) {
  Quality q;
  for (int64_t i = 0; i < n; ++i) {
    const float* a = ref.data() + i * vocab;
    const float* b = got.data() + i * vocab;
    const double la = logsumexp(a, vocab), lb = logsumexp(b, vocab);
    double kl = 0;
    for (int64_t v = 0; v < vocab; ++v) {
      const double pa = a[v] - la, pb = b[v] - lb;
      kl += std::exp(pa) * (pa - pb);
      q.max_abs = std::max(q.max_abs, double(std::abs(a[v] - b[v])));
    }
    q.mean_kl += kl / double(n);
    q.agree += (std::max_element(a, a + vocab) - a == std::max_element(b, b + vocab) - b) ? 1.0 / double(n) : 0.0;
  }
  return q;
}

TEST(KvDtypeQuality, BoundedAgainstF32OnDocsLlama) {
  auto model = Model::load(model_dir("docs-llama-28m"));
  ASSERT_TRUE(model.is_ok()) << model.status().message();
  auto tok = Tokenizer::load(model_dir("docs-llama-28m"));
  ASSERT_TRUE(tok.is_ok()) << tok.status().message();
  auto text = read_text_file(shared_dir() + "/data/docs-val.txt");
  ASSERT_TRUE(text.is_ok());
  auto ids = tok->encode(*text);
  ids.resize(384);
  ThreadPool pool(2);
  ExecContext ctx(pool, CpuFeatures::detect());
  const int64_t vocab = (*model)->config().vocab_size, n = int64_t(ids.size());
  const auto ref = logits_with(**model, ctx, ids, KvDType::F32);
  struct Bound {
    KvDType dt;
    double kl, max_abs, agree;
  };
  for (const Bound& b : {Bound{KvDType::BF16, 2e-4, 0.15, 0.98}, Bound{KvDType::INT8, 1e-3, 0.4, 0.97},
                         Bound{KvDType::FP8, 1e-2, 6.0, 0.93}}) {
    const Quality q = compare(ref, logits_with(**model, ctx, ids, b.dt), n, vocab);
    std::printf("kv %s vs f32: mean KL %.3g, max |dlogit| %.3g, top-1 agreement %.4f\n", kv_dtype_name(b.dt), q.mean_kl,
                q.max_abs, q.agree);
    EXPECT_LE(q.mean_kl, b.kl) << kv_dtype_name(b.dt);
    EXPECT_LE(q.max_abs, b.max_abs) << kv_dtype_name(b.dt);
    EXPECT_GE(q.agree, b.agree) << kv_dtype_name(b.dt);
    EXPECT_GT(q.max_abs, 0.0) << kv_dtype_name(b.dt) << " must actually round something";
  }
}

}  // namespace
}  // namespace tern::test
