// A test-only communicator: N ranks as N threads of this process. Collectives meet at a barrier over
// shared slots (every rank in the same order); send / recv go through per-(from, to, tag) mailboxes,
// so a send never blocks (as MPI's eager sends) and a recv waits for its message (at most 120 s,
// then fails instead of hanging the suite).
#pragma once

#include <barrier>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <map>
#include <mutex>
#include <tuple>
#include <vector>

#include "parallel/communicator.h"

namespace tern::test {

struct ThreadGroup {
  explicit ThreadGroup(int n) : size(n), sync(n), slots(size_t(n)) {}
  int size;
  std::barrier<> sync;
  std::vector<const void*> slots;
  std::mutex mu;
  std::condition_variable cv;
  std::map<std::tuple<int, int, int>, std::deque<std::vector<char>>> mail;  // (from, to, tag)
};

class ThreadComm : public Communicator {
 public:
  ThreadComm(ThreadGroup& g, int rank) : g_(&g), rank_(rank) {}
  int rank() const override { return rank_; }
  int size() const override { return g_->size; }
  std::string name() const override { return "threads"; }

 protected:
  Status do_all_reduce_sum(float* d, int64_t n) override {
    publish(d);
    std::vector<float> sum(size_t(n), 0.f);
    for (int r = 0; r < g_->size; ++r) {
      const auto* p = static_cast<const float*>(g_->slots[size_t(r)]);
      for (int64_t i = 0; i < n; ++i) sum[size_t(i)] += p[i];
    }
    g_->sync.arrive_and_wait();
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
  Status do_send(const void* d, int64_t bytes, int peer, int tag) override {
    const auto* p = static_cast<const char*>(d);
    {
      std::lock_guard<std::mutex> lock(g_->mu);
      g_->mail[{rank_, peer, tag}].emplace_back(p, p + bytes);
    }
    g_->cv.notify_all();
    return Status::ok();
  }
  Status do_recv(void* d, int64_t bytes, int peer, int tag) override {
    std::unique_lock<std::mutex> lock(g_->mu);
    auto& q = g_->mail[{peer, rank_, tag}];
    if (!g_->cv.wait_for(lock, std::chrono::seconds(120), [&] { return !q.empty(); })) {
      return Status::error("recv: nothing came within 120 s");
    }
    if (int64_t(q.front().size()) != bytes) return Status::error("recv: size mismatch");
    std::memcpy(d, q.front().data(), size_t(bytes));
    q.pop_front();
    return Status::ok();
  }
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
  Status do_all_to_all(const void* s, int64_t b, void* r) override {
    publish(s);
    for (int p = 0; p < g_->size; ++p) {
      std::memcpy(static_cast<char*>(r) + p * b, static_cast<const char*>(g_->slots[size_t(p)]) + rank_ * b, size_t(b));
    }
    g_->sync.arrive_and_wait();
    return Status::ok();
  }
  Status do_barrier() override {
    g_->sync.arrive_and_wait();
    return Status::ok();
  }

 private:
  void publish(const void* p) {
    g_->slots[size_t(rank_)] = p;
    g_->sync.arrive_and_wait();
  }
  ThreadGroup* g_;
  int rank_;
};

}  // namespace tern::test
