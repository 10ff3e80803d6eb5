// Row and column slices of a bound weight matrix in any of the formats tensor parallelism cuts
// (model/tp_shard.h): dense (f32/f16/bf16), tern's int8 per channel (Int8Channel), FP8 per channel,
// int4 groups (Int4Group) and GGUF block types (Q8_0, Q4_0, Q4_K, Q5_K, Q6_K, ...).
//
// Every format stores a weight [rows = out, cols = in] row by row, so a row range is a pointer
// offset into codes, scales and zero points (a view). A column range must start and end on the
// format's column block: 1 for dense / per-channel formats, the group for Int4Group, the block's
// values for GGUF (32 for Q8_0 / Q4_0 / Q5_0, 256 for the K-quants); the codes (and scales) of that
// range are copied into an arena, [rows, n]. Sparse bitmask weights and act-order int4 (columns
// stored permuted) cannot be cut by columns; the callers report them by name.
#pragma once

#include <cstdint>
#include <string>

#include "core/status.h"
#include "core/weight_arena.h"
#include "core/weight_matrix.h"

namespace tern {

// Columns per block of `w`'s format (the granularity a column slice needs); 0 when columns cannot
// be cut at all (sparse bitmask, act-order int4).
int64_t column_block(const WeightMatrix& w);
// "bf16", "int8 per channel", "int4 group 128", "Q4_K", ...: for error messages.
std::string weight_format_name(const WeightMatrix& w);

// Rows [r0, r0 + n), in place (a view into w's storage). Sparse bitmask: not supported (caller checks).
WeightMatrix row_slice(const WeightMatrix& w, int64_t r0, int64_t n);
// Columns [c0, c0 + n), copied into the arena ([rows, n], same format). c0 and n must be multiples of
// column_block(w) > 0 (checked by the caller).
WeightMatrix column_slice(const WeightMatrix& w, int64_t c0, int64_t n, WeightArena& arena);
// Bytes of w's codes (data) array: rows × the stored row.
size_t data_bytes(const WeightMatrix& w);
// A deep copy of w (codes, scales, zero points, column order) into the arena.
WeightMatrix copy_matrix(const WeightMatrix& w, WeightArena& arena);

// Drops the whole pages of [p, p + bytes) from this process's resident set (madvise DONTNEED). Only
// for read-only file mappings (they fault back in from the file if touched again) or memory nobody
// reads again.
void release_pages(const void* p, size_t bytes);
// The same for a dense matrix's data (other formats and absent matrices: nothing).
void release_pages(const WeightMatrix& w);

}  // namespace tern
