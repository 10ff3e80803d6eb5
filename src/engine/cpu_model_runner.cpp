#include "engine/cpu_model_runner.h"

#include <fmt/format.h>

namespace tern {

CpuModelRunner::CpuModelRunner(const Model& model, ExecContext& ctx, int64_t max_step_tokens, int64_t max_logit_rows)
    : model_(&model), ctx_(&ctx), decoder_(model, max_step_tokens), max_logit_rows_(std::max<int64_t>(1, max_logit_rows)) {
  steps_.reserve(size_t(max_logit_rows_));
  hidden_.resize(size_t(max_logit_rows_ * model.config().hidden_size));
}

int64_t CpuModelRunner::vocab_size() const { return model_->config().vocab_size; }

int64_t CpuModelRunner::max_context() const {
  const int64_t n = model_->config().max_position_embeddings;
  return n > 0 ? n : int64_t(1) << 20;
}

size_t CpuModelRunner::kv_block_bytes(int block_size, KvDType dtype) const {
  return PagedKvCache::block_bytes_for(model_->config(), block_size, dtype);
}

Status CpuModelRunner::allocate_kv(const KvPoolSpec& spec) {
  if (kv_) return Status::error("the KV pool is already allocated");
  if (spec.block_size <= 0) return Status::error(fmt::format("KV block size must be positive (got {})", spec.block_size));
  if (spec.num_blocks <= 0) return Status::error(fmt::format("KV pool needs at least one block (got {})", spec.num_blocks));
  auto kv = std::make_unique<PagedKvCache>(model_->config(), spec.block_size, spec.dtype);
  TERN_RETURN_IF_ERROR(kv->allocate(spec.num_blocks));
  kv_ = std::move(kv);
  return Status::ok();
}

Status CpuModelRunner::prepare(const StepBatch& batch, int64_t* want_out) {
  steps_.clear();
  int64_t total = 0, want = 0;
  for (const BatchSequence& s : batch.seqs) {
    if (s.pos0 + s.n_tokens > max_context()) {
      return Status::error(fmt::format("position {} is past the model's context of {}", s.pos0 + s.n_tokens, max_context()));
    }
    SeqStep st;
    st.pos0 = s.pos0;
    st.n_tokens = s.n_tokens;
    st.block_table = s.block_table;
    st.n_blocks = s.n_blocks;
    if (s.want_logits && (s.n_logits < 1 || s.n_logits > s.n_tokens)) {
      return Status::error(fmt::format("a sequence asks for logits of {} positions but runs {} tokens", s.n_logits, s.n_tokens));
    }
    st.n_out = s.want_logits ? s.n_logits : 0;
    steps_.push_back(st);
    total += s.n_tokens;
    want += st.n_out;
  }
  if (total != int64_t(batch.token_ids.size())) {
    return Status::error(fmt::format("step batch has {} token ids but its sequences need {}", batch.token_ids.size(), total));
  }
  if (want > max_logit_rows_) {
    return Status::error(fmt::format("the step wants {} rows of logits, more than the runner's {}", want, max_logit_rows_));
  }
  *want_out = want;
  return Status::ok();
}

Status CpuModelRunner::forward(const StepBatch& batch, float* logits) {
  if (!kv_) return Status::error("forward before allocate_kv");
  if (batch.seqs.empty()) return Status::ok();
  int64_t want = 0;
  TERN_RETURN_IF_ERROR(prepare(batch, &want));
  TERN_RETURN_IF_ERROR(decoder_.forward_batch(*ctx_, *kv_, batch.token_ids.data(), steps_.data(), int(steps_.size()),
                                              hidden_.data()));
  if (want > 0) TERN_RETURN_IF_ERROR(decoder_.logits(*ctx_, hidden_.data(), want, logits));
  return Status::ok();
}

}  // namespace tern

namespace tern {

int CpuModelRunner::max_steps_in_flight() const {
  const PpLayout& p = model_->pp();
  if (!p.enabled() || !model_->pp_comm() || model_->pp_comm()->rank() != 0) return 1;
  return std::max(1, p.steps_in_flight);
}

Status CpuModelRunner::start_forward(const StepBatch& batch, float* logits) {
  if (max_steps_in_flight() <= 1) return forward(batch, logits);
  if (!kv_) return Status::error("forward before allocate_kv");
  int64_t want = 0;
  if (!batch.seqs.empty()) TERN_RETURN_IF_ERROR(prepare(batch, &want));
  PendingRecv pending;
  if (!batch.seqs.empty()) {
    // Micro-batches fill a pipeline that would otherwise be empty (one long prompt); with another
    // step already in it each extra chunk is only one more pass over the stage's weights.
    const int micro = in_flight_.empty() ? 0 : 1;
    TERN_RETURN_IF_ERROR(decoder_.forward_logits_start(*ctx_, *kv_, batch.token_ids.data(), steps_.data(),
                                                       int(steps_.size()), logits, &pending, micro));
  }
  in_flight_.push_back(std::move(pending));  // inactive when nothing wants logits: finish is then a no-op
  return Status::ok();
}

Status CpuModelRunner::finish_forward() {
  if (max_steps_in_flight() <= 1) return Status::ok();
  if (in_flight_.empty()) return Status::error("finish_forward: no step was started");
  PendingRecv pending = std::move(in_flight_.front());
  in_flight_.pop_front();
  return decoder_.forward_logits_finish(pending);
}

}  // namespace tern
