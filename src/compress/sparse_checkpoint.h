// tern sparsify: a dense checkpoint whose decoder linears hold zeros (tern prune's output, or any
// pruned Hugging Face model) rewritten in compressed-tensors' sparse layouts, which tern's sparse
// kernels stream (formats/sparse/sparse_linear.h; docs/pruning.md "Sparse format"):
//   unstructured: sparse-bitmask (values + 1 bit per weight + row offsets);
//   2:4:          sparse-24-bitmask (values [rows, cols/2] + 1 bit per weight).
// Values stay bf16 (f16 / f32 checkpoints are rounded to bf16), or with int8 they are quantized per
// output channel (symmetric, round to nearest; compressed-tensors int-quantized W8A16). Everything else
// (embeddings, norms, the LM head unless lm_head) is copied as stored; config.json gains quantization_config.sparsity_config.
#pragma once

#include <cstddef>
#include <string>

#include "core/status.h"

namespace tern {

enum class SparseStructure { Auto, Unstructured, TwoFour };

struct SparsifyOptions {
  std::string in_dir;
  std::string out_dir;
  SparseStructure structure = SparseStructure::Auto;  // Auto: 2:4 when every linear is 2:4, else unstructured
  bool int8 = false;
  // Store the LM head sparse too (it must be its own tensor, lm_head.weight, with zeros: tern prune
  // --prune-lm-head writes one); config.json's tie_word_embeddings becomes false. Off: the head is copied.
  bool lm_head = false;
  size_t max_shard_bytes = size_t(5) << 30;
};

struct SparsifyReport {
  SparseStructure structure = SparseStructure::Unstructured;
  int linears = 0;
  double sparsity = 0.0;        // zeros / weights over the linears stored sparse
  size_t dense_bytes = 0;       // those linears as stored in the input
  size_t sparse_bytes = 0;      // the same as written (values + masks + offsets + scales)
};

Result<SparsifyReport> write_sparse_checkpoint(const SparsifyOptions& options);

}  // namespace tern
