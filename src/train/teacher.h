// The teacher's next-token distributions for a training micro-batch, computed on the fly by tern's
// inference forward (model/decoder.h, the same path `tern eval ppl` takes): each packed sequence is
// prefilled from an empty KV cache and the logits at every position are turned into log-probabilities,
// kept over the whole vocabulary or as the top k plus the rest (the form of eval/kl_divergence.h).
#pragma once

#include <cstdint>
#include <vector>

#include "core/exec_context.h"
#include "core/status.h"
#include "kv/sequence_kv_cache.h"
#include "model/decoder.h"
#include "model/model.h"
#include "train/train_loss.h"

namespace tern::train {

class Teacher {
 public:
  // top_k = 0: the whole vocabulary.
  Teacher(const Model& model, int64_t batch, int64_t seq, int64_t top_k);

  // ids: [batch · seq]. Afterwards rows() describes [batch · seq] rows.
  Status run(ExecContext& ctx, const int32_t* ids);
  const TeacherRows& rows() const { return rows_; }

 private:
  const Model* model_;
  int64_t batch_, seq_, top_k_, vocab_;
  Decoder decoder_;
  SequenceKvCache kv_;
  std::vector<float> hidden_, logits_, full_;  // [seq, hidden], [seq, vocab], [seq, vocab] (top-k only)
  std::vector<float> logp_, rest_;             // [m, k or vocab], [m]
  std::vector<int32_t> ids_, order_;           // [m, k], [vocab]
  TeacherRows rows_;
};

}  // namespace tern::train
