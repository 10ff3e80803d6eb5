// Tensor parallelism without MPI (tests): T ranks as T threads of this process, joined by the
// test-only communicator over shared memory (thread_communicator.h), each loading its own shard.
// Rank 0 decodes greedily, the others run run_tp_worker. Shared by test_tp_threads.cpp (dense) and
// test_tp_quant.cpp.
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <functional>
#include <thread>

#include "core/cpu_features.h"
#include "core/thread_pool.h"
#include "kv/sequence_kv_cache.h"
#include "model/decoder.h"
#include "model/model.h"
#include "parallel/step_message.h"
#include "parallel/tp_worker.h"
#include "thread_communicator.h"

namespace tern::test::tp_threads {

inline std::vector<int32_t> greedy(const Model& m, ExecContext& ctx, const std::vector<int32_t>& ids, int n) {
  const ModelConfig& c = m.config();
  Decoder dec(m);
  SequenceKvCache kv(c, int64_t(ids.size()) + n);
  std::vector<float> hidden(size_t(c.hidden_size)), logits(size_t(c.vocab_size));
  std::vector<int32_t> out, next = ids;
  for (int i = 0; i < n; ++i) {
    if (!dec.forward(ctx, kv, next.data(), int64_t(next.size()), 1, hidden.data()).is_ok()) return {};
    if (!dec.logits(ctx, hidden.data(), 1, logits.data()).is_ok()) return {};
    out.push_back(int32_t(std::max_element(logits.begin(), logits.end()) - logits.begin()));
    next = {out.back()};
  }
  return out;
}

// Greedy tokens of `dir` split over T threads; opts: the load options besides the communicator.
inline std::vector<int32_t> tp_greedy(const std::string& dir, int T, const std::vector<int32_t>& ids, int n,
                                      ModelLoadOptions opts = {}) {
  ThreadGroup g(T);
  std::vector<int32_t> out;
  std::vector<std::thread> ranks;
  for (int r = 0; r < T; ++r) {
    ranks.emplace_back([&, r] {
      ThreadComm comm(g, r);
      ThreadPool pool(1);
      ExecContext ctx(pool, CpuFeatures::detect());
      ModelLoadOptions lo = opts;
      lo.tp = &comm;
      auto m = Model::load(dir, lo);
      ASSERT_TRUE(m.is_ok()) << m.status().message();  // every rank fails alike: no one waits alone
      if (r == 0) {
        out = greedy(**m, ctx, ids, n);
        EXPECT_TRUE(broadcast_stop(comm).is_ok());
      } else {
        EXPECT_TRUE(run_tp_worker(**m, ctx, comm).is_ok());
      }
    });
  }
  for (auto& t : ranks) t.join();
  return out;
}

// The first line of every rank's load error when T threads load `dir` (empty: every rank loaded).
inline std::string tp_load_error(const std::string& dir, int T, ModelLoadOptions opts = {}) {
  ThreadGroup g(T);
  std::vector<std::string> err;
  err.resize(size_t(T));
  std::vector<std::thread> ranks;
  for (int r = 0; r < T; ++r) {
    ranks.emplace_back([&, r] {
      ThreadComm comm(g, r);
      ModelLoadOptions lo = opts;
      lo.tp = &comm;
      auto m = Model::load(dir, lo);
      if (!m.is_ok()) err[size_t(r)] = m.status().message();
    });
  }
  for (auto& t : ranks) t.join();
  for (const auto& e : err) if (!e.empty()) return e;
  return "";
}

}  // namespace tern::test::tp_threads
