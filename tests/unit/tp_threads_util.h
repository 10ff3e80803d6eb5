// Tensor parallelism without MPI (tests): T ranks as T threads of this process, joined by a
// test-only communicator over shared memory, each loading its own shard. Rank 0 decodes greedily,
// the others run run_tp_worker. Shared by test_tp_threads.cpp (dense) and test_tp_quant.cpp.
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <barrier>
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

namespace tern::test::tp_threads {

// What the ranks share: one slot per rank and a barrier.
struct Group {
  explicit Group(int n) : size(n), sync(n), slots(size_t(n)) {}
  int size;
  std::barrier<> sync;
  std::vector<const void*> slots;
};

class ThreadCommunicator : public Communicator {
 public:
  ThreadCommunicator(Group& g, int rank) : g_(&g), rank_(rank) {}
  int rank() const override { return rank_; }
  int size() const override { return g_->size; }
  std::string name() const override { return "threads"; }

 protected:
  Status do_all_reduce_sum(float* d, int64_t n) override {
    publish(d);
    std::vector<float> sum(size_t(n), 0.f);
    for (int r = 0; r < g_->size; ++r) {  // rank order on every rank: identical sums
      const auto* p = static_cast<const float*>(g_->slots[size_t(r)]);
      for (int64_t i = 0; i < n; ++i) sum[size_t(i)] += p[i];
    }
    g_->sync.arrive_and_wait();  // everyone has read before anyone writes
    std::memcpy(d, sum.data(), size_t(n) * sizeof(float));
    g_->sync.arrive_and_wait();
    return Status::ok();
  }
  Status do_all_reduce_sum_bf16(uint16_t*, int64_t) override { return Status::error("not in this test"); }
  Status do_broadcast(void* d, int64_t bytes, int root) override {
    publish(d);
    if (rank_ != root) std::memcpy(d, g_->slots[size_t(root)], size_t(bytes));
    g_->sync.arrive_and_wait();
    return Status::ok();
  }
  Status do_send(const void*, int64_t, int, int) override { return Status::error("not in this test"); }
  Status do_recv(void*, int64_t, int, int) override { return Status::error("not in this test"); }
  Status do_all_gather(const void* s, int64_t b, void* r) override {
    publish(s);
    for (int p = 0; p < g_->size; ++p) std::memcpy(static_cast<char*>(r) + p * b, g_->slots[size_t(p)], size_t(b));
    g_->sync.arrive_and_wait();
    return Status::ok();
  }
  Status do_gather(const void* s, int64_t b, void* r, int root) override {
    publish(s);
    if (rank_ == root) {
      for (int p = 0; p < g_->size; ++p) std::memcpy(static_cast<char*>(r) + p * b, g_->slots[size_t(p)], size_t(b));
    }
    g_->sync.arrive_and_wait();
    return Status::ok();
  }
  Status do_all_to_all(const void*, int64_t, void*) override { return Status::error("not in this test"); }
  Status do_barrier() override {
    g_->sync.arrive_and_wait();
    return Status::ok();
  }

 private:
  void publish(const void* p) {
    g_->slots[size_t(rank_)] = p;
    g_->sync.arrive_and_wait();
  }
  Group* g_;
  int rank_;
};

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
  Group g(T);
  std::vector<int32_t> out;
  std::vector<std::thread> ranks;
  for (int r = 0; r < T; ++r) {
    ranks.emplace_back([&, r] {
      ThreadCommunicator comm(g, r);
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
  Group g(T);
  std::vector<std::string> err;
  err.resize(size_t(T));
  std::vector<std::thread> ranks;
  for (int r = 0; r < T; ++r) {
    ranks.emplace_back([&, r] {
      ThreadCommunicator comm(g, r);
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
