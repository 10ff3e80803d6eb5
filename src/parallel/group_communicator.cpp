#include "parallel/group_communicator.h"

#include <fmt/format.h>

#include <algorithm>
#include <cstring>

#include "core/dtype.h"

namespace tern {

namespace {

enum Tag : int {
  kReduceUp = kGroupTagBase,
  kReduceDown,
  kBroadcast,
  kGather,
  kAllGatherDown,
  kAllToAllUp,
  kAllToAllDown,
  kBarrierUp,
  kBarrierDown,
  kUser = kGroupTagBase + 1000,  // send / recv of the group's users: their tag + kUser
};

class GroupCommunicator : public Communicator {
 public:
  GroupCommunicator(Communicator& parent, std::vector<int> members, int rank)
      : parent_(&parent), members_(std::move(members)), rank_(rank) {}
  int rank() const override { return rank_; }
  int size() const override { return int(members_.size()); }
  std::string name() const override { return parent_->name() + "-group"; }

 protected:
  Status do_all_reduce_sum(float* d, int64_t n) override {
    const int64_t bytes = n * int64_t(sizeof(float));
    if (rank_ != 0) {
      TERN_RETURN_IF_ERROR(parent_->send(d, bytes, at(0), kReduceUp));
      return parent_->recv(d, bytes, at(0), kReduceDown);
    }
    tmp_.resize(size_t(n));
    for (int r = 1; r < size(); ++r) {  // rank order: d0 + d1 + d2 ...
      TERN_RETURN_IF_ERROR(parent_->recv(tmp_.data(), bytes, at(r), kReduceUp));
      for (int64_t i = 0; i < n; ++i) d[i] += tmp_[size_t(i)];
    }
    for (int r = 1; r < size(); ++r) TERN_RETURN_IF_ERROR(parent_->send(d, bytes, at(r), kReduceDown));
    return Status::ok();
  }
  Status do_all_reduce_sum_bf16(uint16_t* d, int64_t n) override {
    std::vector<float> f(static_cast<size_t>(n));
    for (int64_t i = 0; i < n; ++i) f[size_t(i)] = bf16_to_f32(d[i]);
    TERN_RETURN_IF_ERROR(do_all_reduce_sum(f.data(), n));
    for (int64_t i = 0; i < n; ++i) d[i] = f32_to_bf16(f[size_t(i)]);
    return Status::ok();
  }
  Status do_broadcast(void* d, int64_t bytes, int root) override {
    if (rank_ != root) return parent_->recv(d, bytes, at(root), kBroadcast);
    for (int r = 0; r < size(); ++r) {
      if (r != root) TERN_RETURN_IF_ERROR(parent_->send(d, bytes, at(r), kBroadcast));
    }
    return Status::ok();
  }
  Status do_send(const void* d, int64_t bytes, int peer, int tag) override {
    return parent_->send(d, bytes, at(peer), kUser + tag);
  }
  Status do_recv(void* d, int64_t bytes, int peer, int tag) override {
    return parent_->recv(d, bytes, at(peer), kUser + tag);
  }
  Status do_post_recv(PendingRecv& p) override {
    auto inner = std::make_shared<PendingRecv>();
    TERN_RETURN_IF_ERROR(parent_->post_recv(p.data, p.bytes, at(p.peer), kUser + p.tag, inner.get()));
    p.impl = inner;
    return Status::ok();
  }
  Status do_wait_recv(PendingRecv& p) override { return parent_->wait_recv(*static_cast<PendingRecv*>(p.impl.get())); }
  Status do_gather(const void* s, int64_t b, void* r, int root) override {
    if (rank_ != root) return parent_->send(s, b, at(root), kGather);
    auto* out = static_cast<char*>(r);
    for (int p = 0; p < size(); ++p) {
      if (p == root) std::memmove(out + p * b, s, size_t(b));
      else TERN_RETURN_IF_ERROR(parent_->recv(out + p * b, b, at(p), kGather));
    }
    return Status::ok();
  }
  Status do_all_gather(const void* s, int64_t b, void* r) override {
    TERN_RETURN_IF_ERROR(do_gather(s, b, r, 0));
    const int64_t all = b * size();
    if (rank_ != 0) return parent_->recv(r, all, at(0), kAllGatherDown);
    for (int p = 1; p < size(); ++p) TERN_RETURN_IF_ERROR(parent_->send(r, all, at(p), kAllGatherDown));
    return Status::ok();
  }
  // send [size, b] from every rank to rank 0 as [size, size, b], which hands out each rank's column.
  Status do_all_to_all(const void* s, int64_t b, void* r) override {
    const int n = size();
    const int64_t row = b * n;
    if (rank_ != 0) {
      TERN_RETURN_IF_ERROR(parent_->send(s, row, at(0), kAllToAllUp));
      return parent_->recv(r, row, at(0), kAllToAllDown);
    }
    std::vector<char> all(static_cast<size_t>(row * n)), col(static_cast<size_t>(row));
    std::memcpy(all.data(), s, size_t(row));
    for (int p = 1; p < n; ++p) TERN_RETURN_IF_ERROR(parent_->recv(all.data() + p * row, row, at(p), kAllToAllUp));
    for (int dst = 0; dst < n; ++dst) {
      char* to = dst == 0 ? static_cast<char*>(r) : col.data();
      for (int src = 0; src < n; ++src) std::memcpy(to + src * b, all.data() + src * row + dst * b, size_t(b));
      if (dst != 0) TERN_RETURN_IF_ERROR(parent_->send(col.data(), row, at(dst), kAllToAllDown));
    }
    return Status::ok();
  }
  Status do_barrier() override {
    char c = 0;
    if (rank_ != 0) {
      TERN_RETURN_IF_ERROR(parent_->send(&c, 1, at(0), kBarrierUp));
      return parent_->recv(&c, 1, at(0), kBarrierDown);
    }
    for (int p = 1; p < size(); ++p) TERN_RETURN_IF_ERROR(parent_->recv(&c, 1, at(p), kBarrierUp));
    for (int p = 1; p < size(); ++p) TERN_RETURN_IF_ERROR(parent_->send(&c, 1, at(p), kBarrierDown));
    return Status::ok();
  }

 private:
  int at(int r) const { return members_[size_t(r)]; }
  Communicator* parent_;
  std::vector<int> members_;
  int rank_;
  std::vector<float> tmp_;
};

}  // namespace

Result<std::unique_ptr<Communicator>> make_group_communicator(Communicator& parent, std::vector<int> members) {
  if (members.empty()) return Status::error("group communicator: no members");
  int rank = -1;
  for (size_t i = 0; i < members.size(); ++i) {
    const int m = members[i];
    if (m < 0 || m >= parent.size()) return Status::error(fmt::format("group communicator: rank {} is not a rank", m));
    if (std::count(members.begin(), members.end(), m) != 1) {
      return Status::error(fmt::format("group communicator: rank {} is listed twice", m));
    }
    if (m == parent.rank()) rank = int(i);
  }
  if (rank < 0) return Status::error("group communicator: this rank is not a member");
  return std::unique_ptr<Communicator>(new GroupCommunicator(parent, std::move(members), rank));
}

}  // namespace tern
