#include "model/blocks/embedding.h"

#include "model/weight_binder.h"
#include "ops/embedding.h"

namespace tern {

void embed_tokens(ExecContext& ctx, const WeightMatrix& table, float scale, const WeightMatrix& pos_table,
                  const int32_t* ids, const int32_t* positions, int64_t m, float* out, float* scratch) {
  const int64_t d = table.cols;
  embedding_lookup(ctx, table, ids, m, out);
  if (scale != 1.f) {
    for (int64_t i = 0; i < m * d; ++i) out[i] *= scale;
  }
  if (pos_table.data) {
    embedding_lookup(ctx, pos_table, positions, m, scratch);
    for (int64_t i = 0; i < m * d; ++i) out[i] += scratch[i];
  }
}

Result<WeightMatrix> bind_lm_head(WeightBinder& b, const ModelConfig& cfg, const WeightMatrix& embed) {
  if (cfg.tie_word_embeddings && !b.has("lm_head.weight")) return embed;
  return b.matrix("lm_head.weight", cfg.vocab_size, cfg.hidden_size);
}

}  // namespace tern
