// The last layer's feed-forward runs on the rows whose hidden state is returned only (model/decoder.cpp):
// the returned rows, and the KV cache a later step reads, are those of a forward that computes every row.
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "model/decoder.h"
#include "model/model.h"
#include "test_support.h"

namespace tern {
namespace {

TEST(DecoderOutputRows, OnlyTheReturnedRowsGoThroughTheLastFeedForward) {
  auto loaded = Model::load(test::model_dir("docs-llama-28m"));
  ASSERT_TRUE(loaded.is_ok()) << loaded.status().message();
  const Model& m = **loaded;
  const int64_t H = m.config().hidden_size, n = 40;
  std::vector<int32_t> ids(size_t(n) + 1);
  for (size_t i = 0; i < ids.size(); ++i) ids[i] = int32_t((i * 131 + 7) % 1000);
  ThreadPool pool(2);
  ExecContext ctx(pool, CpuFeatures::detect());
  // Every row returned (nothing trimmed): the reference, then one decode step on its cache.
  Decoder full(m);
  SequenceKvCache kv_full(m.config(), n + 1);
  std::vector<float> all(size_t(n * H)), next_full(static_cast<size_t>(H));
  ASSERT_TRUE(full.forward(ctx, kv_full, ids.data(), n, n, all.data()).is_ok());
  ASSERT_TRUE(full.forward(ctx, kv_full, ids.data() + n, 1, 1, next_full.data()).is_ok());
  auto close = [](float a, float b) { return std::fabs(a - b) <= 1e-4f * (1.f + std::fabs(b)); };
  // n_out rows, in one chunk of 40 and in chunks of 16 (the output rows span the last two chunks).
  for (int64_t chunk : {int64_t(512), int64_t(16)}) {
    for (int64_t n_out : {int64_t(1), int64_t(3), int64_t(20)}) {
      Decoder dec(m, chunk);
      SequenceKvCache kv(m.config(), n + 1);
      std::vector<float> out(size_t(n_out * H)), next(static_cast<size_t>(H));
      ASSERT_TRUE(dec.forward(ctx, kv, ids.data(), n, n_out, out.data()).is_ok());
      for (int64_t i = 0; i < n_out * H; ++i)
        ASSERT_PRED2(close, out[size_t(i)], all[size_t((n - n_out) * H + i)]) << "chunk " << chunk << " n_out " << n_out << " at " << i;
      ASSERT_TRUE(dec.forward(ctx, kv, ids.data() + n, 1, 1, next.data()).is_ok());
      for (int64_t i = 0; i < H; ++i) ASSERT_PRED2(close, next[size_t(i)], next_full[size_t(i)]) << "decode after, " << i;
    }
  }
}

}  // namespace
}  // namespace tern
