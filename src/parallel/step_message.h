// The rank protocol of tensor parallelism: rank 0 owns the tokenizer, scheduler, sampling and HTTP;
// before each decoder call it broadcasts what the call is (this message), and every other rank
// (parallel/tp_worker.h) makes the same call on its shard, so all ranks meet in the same
// collectives in the same order. Two broadcasts per message: the fixed header, then the payload.
//
//   kForward  Decoder::forward_batch over a KV pool: ids [n_ids] int32, per sequence
//             (pos0, n_tokens, n_blocks, n_out) int64, then the block tables [Σ n_blocks] int32
//   kForwardLogits  the same payload: forward_batch, then the logits of its output rows computed by
//             the last pipeline stage right after its layers and sent to rank 0 (Decoder::
//             forward_logits_start: the engine's steps in flight under --pp)
//   kLogits   Decoder::logits of `rows` final-normed hidden rows: [rows, hidden] f32
//   kStop     rank 0 is done: workers return
#pragma once

#include <cstdint>
#include <vector>

#include "core/status.h"
#include "parallel/communicator.h"

namespace tern {

enum class StepOp : int64_t { kForward = 1, kLogits = 2, kStop = 3, kForwardLogits = 4 };

struct StepHeader {
  StepOp op = StepOp::kStop;
  int64_t max_chunk = 0;   // the decoder's chunk: chunks decide the collectives, so workers use the same
  uint64_t pool_id = 0;    // rank 0's pool (its address): workers keep a mirror pool per id
  int64_t block_size = 0, kv_dtype = 0, num_blocks = 0;  // the pool's geometry now (it may have grown)
  int64_t n_seqs = 0, n_ids = 0, n_table = 0;            // kForward payload sizes
  int64_t rows = 0;                                      // kLogits rows
  int64_t micro_batches = 0;  // pipeline: the step's micro-batches (0: the layout's --pp-micro-batches)
  int64_t payload_bytes = 0;
};

struct StepSeq {
  int64_t pos0 = 0, n_tokens = 0, n_blocks = 0, n_out = 0;
};

// A decoded kForward / kLogits payload.
struct StepPayload {
  std::vector<int32_t> ids;
  std::vector<StepSeq> seqs;
  std::vector<int32_t> tables;  // concatenated, seqs[i].n_blocks each
  std::vector<float> hidden;    // kLogits: [rows, hidden]
};

// Rank 0: header then payload (the payload is built from the pieces given).
// op: kForward or kForwardLogits.
Status broadcast_forward(Communicator& comm, StepHeader h, const int32_t* ids, const std::vector<StepSeq>& seqs,
                         const std::vector<const int32_t*>& tables, StepOp op = StepOp::kForward);
Status broadcast_logits(Communicator& comm, StepHeader h, const float* hidden, int64_t hidden_size);
Status broadcast_stop(Communicator& comm);

// Other ranks: the next message. hidden_size sizes kLogits payloads. An inconsistent header is an error.
Status receive_step(Communicator& comm, int64_t hidden_size, StepHeader& h, StepPayload& p);

}  // namespace tern
