// The one front door for moving data between the ranks that together run one model (issue 17):
// rank and size, all-reduce (f32, bf16), broadcast, point-to-point, gathers, all-to-all, barrier.
// Implementations: LocalCommunicator (one process, size 1), MpiCommunicator (CPU processes over
// OpenMPI; TERN_HAVE_MPI builds), NcclCommunicator (GPU buffers; TERN_HAVE_NCCL builds).
//
// This header sits low in the layers (core only): the decoder (model/) calls it for its two
// all-reduces per layer. A communicator is always passed in, never found through a global.
//
// Every call is collective over all ranks in the same order, except send/recv. The public
// methods check arguments, count the bytes this rank sends (stats()), and call the virtual do_*.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "core/status.h"

namespace tern {

// What this rank has sent since construction, by kind (the /metrics counters).
struct CommStats {
  int64_t all_reduce_bytes = 0;  // payload bytes handed to all_reduce (the "2 × layers × hidden × bytes" figure)
  int64_t broadcast_bytes = 0;   // bytes broadcast from this rank as root
  int64_t gather_bytes = 0;      // bytes this rank contributed to gathers / all-gathers
  int64_t p2p_bytes = 0;         // send + all_to_all bytes
  int64_t calls = 0;             // collective and point-to-point calls
  int64_t total() const { return all_reduce_bytes + broadcast_bytes + gather_bytes + p2p_bytes; }
};

// A receive posted by post_recv and completed by wait_recv. The transport's handle (an MPI request)
// lives in `impl`; null where the transport defers the whole receive to wait_recv.
struct PendingRecv {
  void* data = nullptr;
  int64_t bytes = 0;
  int peer = -1, tag = -1;
  std::shared_ptr<void> impl;
  bool active() const { return peer >= 0; }
};

class Communicator {
 public:
  virtual ~Communicator() = default;
  virtual int rank() const = 0;
  virtual int size() const = 0;
  // "local", "mpi", "nccl".
  virtual std::string name() const = 0;

  // data [n] := Σ over ranks of data [n], identical on every rank afterwards.
  Status all_reduce_sum(float* data, int64_t n);
  // bf16 values (uint16 bit patterns) [n]; summed in f32, rounded to bf16 once at the end.
  Status all_reduce_sum_bf16(uint16_t* data, int64_t n);
  // data [rows, cols] := Σ over ranks, exchanged as int8 codes with one scale per row
  // (parallel/compressed_all_reduce.h, --tp-comm int8); scratch: reused buffer.
  Status all_reduce_sum_int8(float* data, int64_t rows, int64_t cols, std::vector<int8_t>& scratch);
  // data [bytes] of `root` copied to every rank.
  Status broadcast(void* data, int64_t bytes, int root);
  Status send(const void* data, int64_t bytes, int peer, int tag);
  Status recv(void* data, int64_t bytes, int peer, int tag);
  // recv in two halves: post now, wait later (data must stay valid until wait_recv returns). Matches
  // sends in posting order as recv does. Why: pipeline parallelism's rank 0 posts the receive of a
  // step's logits, then sends the next step into the pipeline while the last stage may already be
  // sending those logits: with both sends blocking (MPI's rendezvous for large messages) a plain recv
  // afterwards would deadlock (docs/parallel.md, "Steps in flight"). MPI posts an MPI_Irecv; a
  // transport whose sends never wait for the receiver (local, the tests' thread mailboxes) may defer
  // the whole receive to wait_recv (the default).
  Status post_recv(void* data, int64_t bytes, int peer, int tag, PendingRecv* pending);
  Status wait_recv(PendingRecv& pending);
  // recv [size, bytes_each] := every rank's send [bytes_each], in rank order, on every rank.
  Status all_gather(const void* send, int64_t bytes_each, void* recv);
  // The same, on `root` only (recv is ignored elsewhere and may be null there).
  Status gather(const void* send, int64_t bytes_each, void* recv, int root);
  // send [size, bytes_each]: block j goes to rank j; recv [size, bytes_each]: block j came from rank j.
  Status all_to_all(const void* send, int64_t bytes_each, void* recv);
  Status barrier();

  // A snapshot; safe to read from another thread (the HTTP front's /metrics) while steps run.
  CommStats stats() const {
    return {all_reduce_bytes_.load(), broadcast_bytes_.load(), gather_bytes_.load(), p2p_bytes_.load(), calls_.load()};
  }

 protected:
  virtual Status do_all_reduce_sum(float* data, int64_t n) = 0;
  virtual Status do_all_reduce_sum_bf16(uint16_t* data, int64_t n) = 0;
  virtual Status do_broadcast(void* data, int64_t bytes, int root) = 0;
  virtual Status do_send(const void* data, int64_t bytes, int peer, int tag) = 0;
  virtual Status do_recv(void* data, int64_t bytes, int peer, int tag) = 0;
  virtual Status do_all_gather(const void* send, int64_t bytes_each, void* recv) = 0;
  virtual Status do_gather(const void* send, int64_t bytes_each, void* recv, int root) = 0;
  virtual Status do_all_to_all(const void* send, int64_t bytes_each, void* recv) = 0;
  virtual Status do_barrier() = 0;
  virtual Status do_post_recv(PendingRecv& pending) {
    (void)pending;
    return Status::ok();
  }
  virtual Status do_wait_recv(PendingRecv& pending) { return do_recv(pending.data, pending.bytes, pending.peer, pending.tag); }

 private:
  Status check_rank(const char* what, int r) const;
  std::atomic<int64_t> all_reduce_bytes_{0}, broadcast_bytes_{0}, gather_bytes_{0}, p2p_bytes_{0}, calls_{0};
};

}  // namespace tern
