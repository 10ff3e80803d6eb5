// The communicator of a single process (size 1): every collective is the identity (a gather copies
// its block), and send/recv to rank 0 itself pass through an in-process queue per tag. What a
// one-process run and the unit tests use, so code above never asks "am I distributed?".
#pragma once

#include <cstdint>
#include <deque>
#include <map>
#include <mutex>
#include <vector>

#include "parallel/communicator.h"

namespace tern {

class LocalCommunicator : public Communicator {
 public:
  int rank() const override { return 0; }
  int size() const override { return 1; }
  std::string name() const override { return "local"; }

 protected:
  Status do_all_reduce_sum(float*, int64_t) override { return Status::ok(); }
  Status do_all_reduce_sum_bf16(uint16_t*, int64_t) override { return Status::ok(); }
  Status do_broadcast(void*, int64_t, int) override { return Status::ok(); }
  Status do_send(const void* data, int64_t bytes, int peer, int tag) override;
  Status do_recv(void* data, int64_t bytes, int peer, int tag) override;
  Status do_all_gather(const void* send, int64_t bytes_each, void* recv) override;
  Status do_gather(const void* send, int64_t bytes_each, void* recv, int root) override;
  Status do_all_to_all(const void* send, int64_t bytes_each, void* recv) override;
  Status do_barrier() override { return Status::ok(); }

 private:
  std::mutex mu_;
  std::map<int, std::deque<std::vector<uint8_t>>> queued_;  // tag -> messages sent to self, oldest first
};

}  // namespace tern
