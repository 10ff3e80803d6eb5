// A linear layer stored sparse in a compressed-tensors checkpoint, bound for the sparse kernels
// (WeightFormat::SparseBitmask, kernels/cpu/sparse_kernels.h). Tensors of module M ("...q_proj"):
//   sparse-bitmask:    M.shape int [2] = [rows, cols]; M.compressed [nnz] (1-D, the kept values row
//                      by row in column order); M.bitmask uint8 [rows, ceil(cols / 8)] (numpy packbits,
//                      bitorder little: bit j % 8 of byte j / 8 is column j); M.row_offsets int [rows]
//                      (index in M.compressed of each row's first value).
//   sparse-24-bitmask: M.shape int [2, 1]; M.compressed [rows, cols / 2]; M.bitmask as above with
//                      exactly 2 bits in every group of 4 columns; no row offsets (row r starts at r·cols/2).
//   int8 (an int-quantized config group): M.compressed is int8 and M.weight_scale [rows, 1] (or [rows])
//   gives w = scale · q per row.
// Values are used in place from the mmap (bf16 or int8); offsets and scales are copied to the arena.
// Everything is checked against everything else first: shapes, dtypes, every row's popcount against
// its offsets and the value count, the 2:4 groups, mask bits past the last column. A disagreement is
// a one-line Status naming the tensor.
#pragma once

#include <string>
#include <vector>

#include "core/status.h"
#include "core/weight_arena.h"
#include "core/weight_matrix.h"
#include "formats/quant/quant_config.h"
#include "formats/tensor_source.h"

namespace tern {

// Whether the checkpoint stores `module` sparse (cfg has a sparsity_config and M.bitmask exists).
bool has_sparse_linear(const TensorSource& store, const QuantConfig& cfg, const std::string& module);

// The tensors of a sparse module (to mark them used): shape, compressed, bitmask, row_offsets, weight_scale.
std::vector<std::string> sparse_tensor_names(const std::string& module);

Result<WeightMatrix> bind_sparse_linear(const TensorSource& store, const QuantConfig& cfg, const std::string& module,
                                        int64_t rows, int64_t cols, WeightArena& arena);

// Rows [r0, r0 + rows) of a bound sparse matrix (a fused tensor split into its parts), no copy.
WeightMatrix sparse_row_slice(const WeightMatrix& w, int64_t r0, int64_t rows);

}  // namespace tern
