// Host side of one CUDA step: turns the engine's ragged StepBatch into the flat arrays the kernels
// read (kernels/cuda/cuda_kernels.h StepTokens), checking every field the engine hands over so that
// a bad batch is a Status, never an out-of-bounds access on the device.
#pragma once

#include <cstdint>
#include <vector>

#include "core/status.h"
#include "engine/model_runner.h"

namespace tern::cuda {

struct PackLimits {
  int64_t max_tokens = 0;      // activation rows of the workspace
  int64_t max_seqs = 0;        // rows of the device block-table matrix
  int max_blocks = 0;          // columns of that matrix (max_context / block_size rounded up)
  int block_size = 16;
  int64_t num_blocks = 0;      // KV pool size: every block id must be < this
  int64_t vocab = 0;           // token ids must be < this
  int64_t max_logit_rows = 0;
};

struct PackedStep {
  std::vector<int32_t> ids;           // [T]
  std::vector<int32_t> pos;           // [T]
  std::vector<int32_t> seq;           // [T] sequence index of each token
  std::vector<int32_t> block_tables;  // [n_seqs, max_blocks], -1 padded
  std::vector<int32_t> logit_rows;    // [R] token row whose logits are wanted, in batch order
  int64_t n_seqs = 0;
  bool decode_only = false;           // every sequence brings exactly one token
};

// Fills `out` (its vectors keep their capacity between steps).
Status pack_step(const StepBatch& batch, const PackLimits& lim, PackedStep& out);

// Cuts a step of more than max_tokens tokens into steps of at most max_tokens, run in order: whole
// sequences where they fit, a long prompt chunk cut into pieces (logits wanted from its last piece
// only). The logit rows of the pieces, concatenated, are those of the original step, in order.
// The returned steps point into `batch` (its block tables) and must not outlive it.
std::vector<StepBatch> split_step(const StepBatch& batch, int64_t max_tokens);

// Pads a decode-only step to `bucket` sequences (graph replay needs fixed shapes): padded tokens are
// id 0 at position 0 with block table row all -1, which the kernels skip (no KV write, zero output).
void pad_decode_step(PackedStep& step, int64_t bucket, int max_blocks);

}  // namespace tern::cuda
