// Embedding block: the residual stream's first value for each token row,
//   x = embed[id] · scale + pos_embed[position]
// scale is Gemma's √hidden (rounded to the checkpoint dtype, as transformers multiplies by a tensor
// of that dtype), else 1; pos_embed is GPT-2's learned absolute table (wpe), else absent.
#pragma once

#include <cstdint>
#include <vector>

#include "core/exec_context.h"
#include "core/status.h"
#include "core/weight_matrix.h"
#include "formats/model_config.h"

namespace tern {

// table: [vocab, hidden]; pos_table: [max_positions, hidden], data null = none.
// ids, positions: [m] (checked by the caller: ids < vocab, positions < pos_table.rows when present).
// out: [m, hidden]; scratch: [m, hidden], used when pos_table is present.
void embed_tokens(ExecContext& ctx, const WeightMatrix& table, float scale, const WeightMatrix& pos_table,
                  const int32_t* ids, const int32_t* positions, int64_t m, float* out, float* scratch);

class WeightBinder;

// The LM head [vocab, hidden]: the checkpoint's lm_head.weight, or `embed` when the config ties them and
// the checkpoint omits it (tied checkpoints that save it anyway get theirs used, not ignored).
Result<WeightMatrix> bind_lm_head(WeightBinder& b, const ModelConfig& cfg, const WeightMatrix& embed);

}  // namespace tern
