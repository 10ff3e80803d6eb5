// The whole training model: its gradient against finite differences of the distillation loss on a
// tiny Llama (tied and untied head), --recompute giving the same gradients, and its forward against
// tern's inference forward on the same weights (a checkpoint it wrote, and docs-llama-28m itself).
#include <gtest/gtest.h>

#include <cmath>

#include "kv/sequence_kv_cache.h"
#include "model/decoder.h"
#include "model/model.h"
#include "op_test_util.h"
#include "test_support.h"
#include "train/train_loss.h"
#include "train/train_model.h"
#include "train/train_params.h"
#include "train_test_util.h"

namespace tern {
namespace {

train::LlamaShape tiny_shape(bool tied) {
  train::LlamaShape s;
  s.vocab = 40;
  s.hidden = 16;
  s.inter = 24;
  s.layers = 2;
  s.heads = 4;
  s.kv_heads = 2;
  s.head_dim = 4;
  s.eps = 1e-5;
  s.tied = tied;
  RopeConfig rc;
  rc.rotary_dim = 4;
  s.inv_freq = rope_inv_freq(rc);
  return s;
}

class TrainModelGrad : public ::testing::TestWithParam<bool> {};

TEST_P(TrainModelGrad, WholeModelGradientMatchesFiniteDifferences) {
  ThreadPool pool(2);
  ExecContext ctx(pool, CpuFeatures::detect());
  const train::LlamaShape shape = tiny_shape(GetParam());
  train::ParamLayout layout(shape);
  std::vector<float> params(size_t(layout.total()));
  train::init_params_random(layout, 3, 0.3, params.data());
  // Norm weights away from 1 so their gradients are not special.
  for (const auto& t : layout.tensors())
    if (t.shape.size() == 1)
      for (int64_t i = 0; i < t.numel; ++i) params[size_t(t.offset + i)] = 0.7f + 0.05f * float(i % 9);
  const int64_t B = 2, T = 6, m = B * T;
  std::vector<int32_t> ids(static_cast<size_t>(m)), targets(static_cast<size_t>(m));
  for (int64_t r = 0; r < m; ++r) {
    ids[size_t(r)] = int32_t((r * 7 + 3) % shape.vocab);
    targets[size_t(r)] = int32_t((r * 11 + 5) % shape.vocab);
  }
  auto tl = test::random_floats(size_t(m * shape.vocab), -3, 3, 31);
  std::vector<float> tlogp(tl.size());
  for (int64_t r = 0; r < m; ++r) train::teacher_log_probs(tl.data() + r * shape.vocab, shape.vocab, tlogp.data() + r * shape.vocab);
  train::TeacherRows teacher{shape.vocab, nullptr, tlogp.data(), nullptr};
  const double alpha = 0.5;

  train::TrainModel model(layout, B, T, false), model_rc(layout, B, T, true);
  std::vector<float> grads(params.size(), 0.f), grads_rc(params.size(), 0.f);
  for (auto* tm : {&model, &model_rc}) {
    tm->forward(ctx, params.data(), ids.data());
    train::loss_and_grad(ctx, tm->logits(), m, shape.vocab, targets.data(), &teacher, alpha, 1.f);
    tm->backward(ctx, params.data(), ids.data(), tm == &model ? grads.data() : grads_rc.data());
  }
  for (size_t i = 0; i < grads.size(); ++i) ASSERT_NEAR(grads[i], grads_rc[i], 1e-5) << "recompute, param " << i;

  auto loss = [&] {
    model.forward(ctx, params.data(), ids.data());
    const auto s = train::loss_and_grad(ctx, model.logits(), m, shape.vocab, targets.data(), &teacher, alpha, 1.f);
    return alpha * s.kl + (1 - alpha) * s.ce;
  };
  // Each tensor separately, a few entries each.
  for (const auto& t : layout.tensors()) {
    std::vector<float> x(params.begin() + t.offset, params.begin() + t.offset + t.numel);
    std::vector<float> g(grads.begin() + t.offset, grads.begin() + t.offset + t.numel);
    auto loss_t = [&] {
      std::copy(x.begin(), x.end(), params.begin() + t.offset);
      return loss();
    };
    test::expect_grad_matches(t.name, x, g, loss_t, 6, 1e-2f, 3e-3, 3e-2);
    std::copy(x.begin(), x.end(), params.begin() + t.offset);
  }
}

INSTANTIATE_TEST_SUITE_P(Head, TrainModelGrad, ::testing::Values(false, true),
                         [](const auto& info) { return info.param ? std::string("tied") : std::string("untied"); });

// logits of TrainModel [B·T, vocab] against the Decoder's, one sequence at a time.
void expect_matches_inference(ExecContext& ctx, const Model& model, const train::ParamLayout& layout,
                              const std::vector<float>& params, int64_t B, int64_t T, double tol) {
  const int64_t vocab = layout.shape().vocab, H = layout.shape().hidden;
  std::vector<int32_t> ids(size_t(B * T));
  for (size_t i = 0; i < ids.size(); ++i) ids[i] = int32_t((i * 2654435761u + 17) % uint64_t(vocab));
  train::TrainModel tm(layout, B, T, false);
  tm.forward(ctx, params.data(), ids.data());
  Decoder dec(model, T);
  std::vector<float> hidden(size_t(T * H)), logits(size_t(T * vocab));
  double worst = 0;
  for (int64_t b = 0; b < B; ++b) {
    SequenceKvCache kv(model.config(), T, KvDType::F32);
    ASSERT_TRUE(dec.forward(ctx, kv, ids.data() + b * T, T, T, hidden.data()).is_ok());
    ASSERT_TRUE(dec.logits(ctx, hidden.data(), T, logits.data()).is_ok());
    for (int64_t i = 0; i < T * vocab; ++i) worst = std::max(worst, double(std::abs(logits[size_t(i)] - tm.logits()[b * T * vocab + i])));
  }
  EXPECT_LE(worst, tol) << "largest logit difference";
}

TEST(TrainModelForward, MatchesInferenceOnACheckpointItWrote) {
  ThreadPool pool(2);
  ExecContext ctx(pool, CpuFeatures::detect());
  test::TempDir dir;
  const std::string cfg = R"({"architectures": ["LlamaForCausalLM"], "model_type": "llama", "vocab_size": 40,
    "hidden_size": 16, "intermediate_size": 24, "num_hidden_layers": 2, "num_attention_heads": 4,
    "num_key_value_heads": 2, "head_dim": 4, "rms_norm_eps": 1e-05, "max_position_embeddings": 64,
    "rope_theta": 10000.0, "tie_word_embeddings": false, "hidden_act": "silu", "torch_dtype": "float32"})";
  auto parsed = parse_model_config(cfg, "test config");
  ASSERT_TRUE(parsed.is_ok()) << parsed.status().message();
  auto shape = train::llama_shape(parsed.value(), "test config");
  ASSERT_TRUE(shape.is_ok()) << shape.status().message();
  train::ParamLayout layout(shape.value());
  std::vector<float> params(size_t(layout.total()));
  train::init_params_random(layout, 5, 0.3, params.data());
  ASSERT_TRUE(train::save_checkpoint(layout, params.data(), dir.path(), cfg, dir.path() + "/none").is_ok());
  auto model = Model::load(dir.path());
  ASSERT_TRUE(model.is_ok()) << model.status().message();
  expect_matches_inference(ctx, *model.value(), layout, params, 2, 20, 1e-4);
}

TEST(TrainModelForward, MatchesInferenceOnDocsLlama) {
  ThreadPool pool(2);
  ExecContext ctx(pool, CpuFeatures::detect());
  auto model = Model::load(test::model_dir("docs-llama-28m"));
  ASSERT_TRUE(model.is_ok()) << model.status().message();
  auto shape = train::llama_shape(model.value()->config(), "docs-llama-28m");
  ASSERT_TRUE(shape.is_ok()) << shape.status().message();
  train::ParamLayout layout(shape.value());
  std::vector<float> params(size_t(layout.total()));
  ASSERT_TRUE(train::load_params(layout, model.value()->store(), params.data()).is_ok());
  expect_matches_inference(ctx, *model.value(), layout, params, 2, 32, 2e-4);
}

}  // namespace
}  // namespace tern
