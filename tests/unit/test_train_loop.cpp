// The pieces of the training loop around the model: the learning-rate schedule, one AdamW step against
// the formula (decay on matrices, not norms), the packed token stream (wrap-around, seek), and the
// resume file (round trip, and a damaged file is an error, not a crash).
#include <gtest/gtest.h>

#include <cmath>

#include "core/mapped_file.h"
#include "test_support.h"
#include "train/adamw.h"
#include "train/train_data.h"
#include "train/train_state.h"

namespace tern {
namespace {

TEST(TrainSchedule, WarmsUpLinearlyThenFollowsACosineToTheFloor) {
  train::Schedule s;
  s.lr = 1e-3;
  s.warmup = 4;
  s.total = 14;
  s.min_ratio = 0.1;
  EXPECT_NEAR(s.at(0), 2.5e-4, 1e-12);
  EXPECT_NEAR(s.at(3), 1e-3, 1e-12);
  EXPECT_NEAR(s.at(4), 1e-3, 1e-12);              // cosine start
  EXPECT_NEAR(s.at(9), 1e-4 + 0.9e-3 * 0.5, 1e-12);  // halfway
  EXPECT_NEAR(s.at(14), 1e-4, 1e-12);
  for (int64_t i = 4; i < 14; ++i) EXPECT_GE(s.at(i), s.at(i + 1));
}

TEST(TrainAdamW, OneStepFollowsTheFormulaAndSkipsDecayOnNorms) {
  ThreadPool pool(2);
  ExecContext ctx(pool, CpuFeatures::detect());
  train::LlamaShape sh;
  sh.vocab = 3;
  sh.hidden = 2;
  sh.inter = 2;
  sh.layers = 1;
  sh.heads = 1;
  sh.kv_heads = 1;
  sh.head_dim = 2;
  sh.tied = true;
  train::ParamLayout layout(sh);
  std::vector<float> p(size_t(layout.total()), 0.5f), g(p.size());
  for (size_t i = 0; i < g.size(); ++i) g[i] = 0.1f * float(int(i % 7) - 3);
  train::AdamWOptions o;
  o.weight_decay = 0.1;
  train::AdamW opt(layout, o);
  const double lr = 0.01;
  opt.update(ctx, p.data(), g.data(), lr);
  for (const auto& t : layout.tensors()) {
    for (int64_t i = 0; i < t.numel; ++i) {
      const size_t k = size_t(t.offset + i);
      // Step 1: m̂ = g, v̂ = g², so the update is lr · g / (|g| + eps) (+ lr · wd · p on decayed tensors).
      const double gi = g[k];
      const double expect = 0.5 - (t.decay ? lr * 0.1 * 0.5 : 0.0) - lr * gi / (std::abs(gi) + 1e-8);
      EXPECT_NEAR(p[k], expect, 1e-6) << t.name << "[" << i << "]";
    }
  }
  EXPECT_EQ(opt.step(), 1);
}

TEST(TrainData, PacksWindowsOfSeqPlusOneAndWrapsAtTheEnd) {
  std::vector<int32_t> tokens(10);
  for (int i = 0; i < 10; ++i) tokens[size_t(i)] = i;
  auto s = train::TokenStream::make(tokens, 10, 2, 3);
  ASSERT_TRUE(s.is_ok()) << s.status().message();
  std::vector<int32_t> ids(6), tg(6);
  s->next(ids.data(), tg.data());
  EXPECT_EQ(ids, (std::vector<int32_t>{0, 1, 2, 3, 4, 5}));
  EXPECT_EQ(tg, (std::vector<int32_t>{1, 2, 3, 4, 5, 6}));
  s->next(ids.data(), tg.data());  // 6..9 fits one window, then the text wraps
  EXPECT_EQ(ids, (std::vector<int32_t>{6, 7, 8, 0, 1, 2}));
  EXPECT_EQ(tg, (std::vector<int32_t>{7, 8, 9, 1, 2, 3}));
  EXPECT_EQ(s->epoch(), 1);
  s->seek(3, 1);
  s->next(ids.data(), tg.data());
  EXPECT_EQ(ids[0], 3);
  EXPECT_FALSE(train::TokenStream::make(tokens, 10, 3, 3).is_ok());  // 10 < 3 × 4
  EXPECT_FALSE(train::TokenStream::make(tokens, 9, 1, 3).is_ok());   // token 9 outside a vocabulary of 9
}

TEST(TrainState, RoundTripsAndRejectsADamagedFile) {
  test::TempDir dir;
  train::TrainState s;
  s.step = 7;
  s.steps = 20;
  s.data_pos = 1234;
  s.epoch = 1;
  s.tokens_hash = 99;
  s.params = 3;
  s.batch = 8;
  s.seq = 256;
  s.accum = 2;
  s.m = {1, 2, 3};
  s.v = {4, 5, 6};
  const std::string path = dir.file("trainer_state.bin");
  ASSERT_TRUE(train::save_train_state(s, path).is_ok());
  auto r = train::load_train_state(path);
  ASSERT_TRUE(r.is_ok()) << r.status().message();
  EXPECT_EQ(r->step, 7u);
  EXPECT_EQ(r->data_pos, 1234u);
  EXPECT_EQ(r->accum, 2u);
  EXPECT_EQ(r->v, (std::vector<float>{4, 5, 6}));
  auto bytes = read_text_file(path);
  ASSERT_TRUE(bytes.is_ok());
  test::write_file(path, bytes->substr(0, bytes->size() - 4));
  EXPECT_FALSE(train::load_train_state(path).is_ok());
  test::write_file(path, "not a state");
  EXPECT_FALSE(train::load_train_state(path).is_ok());
  EXPECT_FALSE(train::load_train_state(dir.file("missing.bin")).is_ok());
}

}  // namespace
}  // namespace tern
