#include "train/teacher.h"

namespace tern::train {

Teacher::Teacher(const Model& model, int64_t batch, int64_t seq, int64_t top_k)
    : model_(&model),
      batch_(batch),
      seq_(seq),
      top_k_(top_k),
      vocab_(model.config().vocab_size),
      decoder_(model, seq),
      kv_(model.config(), seq, KvDType::F32) {
  const int64_t m = batch * seq;
  hidden_.resize(size_t(seq * model.config().hidden_size));
  logits_.resize(size_t(seq * vocab_));
  if (top_k_ > 0) {
    full_.resize(size_t(seq * vocab_));
    logp_.resize(size_t(m * top_k_));
    ids_.resize(size_t(m * top_k_));
    rest_.resize(static_cast<size_t>(m));
    order_.resize(static_cast<size_t>(vocab_));
    rows_ = TeacherRows{top_k_, ids_.data(), logp_.data(), rest_.data()};
  } else {
    logp_.resize(size_t(m * vocab_));
    rows_ = TeacherRows{vocab_, nullptr, logp_.data(), nullptr};
  }
}

Status Teacher::run(ExecContext& ctx, const int32_t* ids) {
  for (int64_t b = 0; b < batch_; ++b) {
    kv_.set_length(0);
    TERN_RETURN_IF_ERROR(decoder_.forward(ctx, kv_, ids + b * seq_, seq_, seq_, hidden_.data()));
    TERN_RETURN_IF_ERROR(decoder_.logits(ctx, hidden_.data(), seq_, logits_.data()));
    float* dst = top_k_ > 0 ? full_.data() : logp_.data() + b * seq_ * vocab_;
    ctx.pool().parallel_for(seq_, 1, [&](int64_t r0, int64_t r1) {
      for (int64_t r = r0; r < r1; ++r) teacher_log_probs(logits_.data() + r * vocab_, vocab_, dst + r * vocab_);
    });
    if (top_k_ > 0) {
      // One order buffer: serial over rows (k selection is small beside the forward).
      for (int64_t r = 0; r < seq_; ++r) {
        const int64_t row = b * seq_ + r;
        teacher_top_k(full_.data() + r * vocab_, vocab_, top_k_, ids_.data() + row * top_k_, logp_.data() + row * top_k_,
                      &rest_[size_t(row)], order_.data());
      }
    }
  }
  return Status::ok();
}

}  // namespace tern::train
