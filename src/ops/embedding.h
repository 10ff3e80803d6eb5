// Token embedding lookup: out[i, :] = table[ids[i], :] as f32.
// table: [vocab, d] in its stored dtype (bf16/f16/f32), a GGUF block type, or Int8Channel (int8 codes,
// one scale per row). ids must be < vocab (checked by the caller).
#pragma once

#include <cstdint>

#include "core/exec_context.h"
#include "core/weight_matrix.h"

namespace tern {

void embedding_lookup(ExecContext& ctx, const WeightMatrix& table, const int32_t* ids, int64_t m, float* out);

}  // namespace tern
