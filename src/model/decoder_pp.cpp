// The decoder's part in pipeline parallelism (parallel/pp_layout.h): each stage runs its layers on
// a chunk and hands the residual stream [c, hidden] f32 to the same tensor-parallel index of the
// next stage; the last stage's first rank returns the final-normed hidden rows and, on the logits
// call, the logits to rank 0 (the only rank that samples).
#include <fmt/format.h>

#include <algorithm>
#include <chrono>

#include "model/decoder.h"
#include "parallel/pp_layout.h"
#include "parallel/step_message.h"

namespace tern {

namespace {

int64_t now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

}  // namespace

void Decoder::pp_busy_start() const {
  if (!pp_) return;
  busy_t0_ = now_ns();
  PpStats& st = model_->pp_stats();
  int64_t zero = 0;
  st.first_ns.compare_exchange_strong(zero, busy_t0_);
}

void Decoder::pp_busy_stop() const {
  if (!pp_ || busy_t0_ == 0) return;
  const int64_t t = now_ns();
  PpStats& st = model_->pp_stats();
  st.busy_ns += t - busy_t0_;
  st.last_ns = t;
  st.calls++;
  busy_t0_ = 0;
}

Status Decoder::pp_receive(int64_t c) {
  const PpLayout& p = model_->pp();
  const int64_t bytes = c * model_->config().hidden_size * int64_t(sizeof(float));
  return pp_->recv(x_.data(), bytes, p.prev_rank(), kPpTagActivation);
}

Status Decoder::pp_send(int64_t c) {
  const PpLayout& p = model_->pp();
  const int64_t n = c * model_->config().hidden_size;
  // The residual leaving the stage: x + the last block's output (what the next layer's norm adds).
  if (model_->pp().layers > 0) {
    for (int64_t i = 0; i < n; ++i) x_[size_t(i)] += block_out_[size_t(i)];
  }
  pp_busy_stop();
  return pp_->send(x_.data(), n * int64_t(sizeof(float)), p.next_rank(), kPpTagActivation);
}

Status Decoder::pp_return_hidden(float* hidden_out, int64_t outs) {
  const PpLayout& p = model_->pp();
  if (outs == 0) return Status::ok();
  const int64_t bytes = outs * model_->config().hidden_size * int64_t(sizeof(float));
  if (pp_->rank() == 0) return pp_->recv(hidden_out, bytes, p.last_leader(), kPpTagHidden);
  if (p.last() && p.tp_rank == 0) return pp_->send(hidden_out, bytes, 0, kPpTagHidden);
  return Status::ok();
}

Status Decoder::forward_logits_start(ExecContext& ctx, PagedKvCache& kv, const int32_t* ids, const SeqStep* seqs,
                                     int n_seqs, float* logits, PendingRecv* pending, int micro_batches) {
  if (!pp_) return Status::error("forward_logits_start: the model is not split into pipeline stages");
  const bool lead = pp_->rank() == 0;
  if (lead && (!pending || model_->pp().last())) {
    return Status::error("forward_logits_start: rank 0 needs a later stage to compute the logits");
  }
  int64_t outs = 0;
  for (int s = 0; s < n_seqs; ++s) outs += std::max<int64_t>(seqs[s].n_out, 0);
  if (!lead && model_->pp().last()) pp_hidden_.resize(size_t(std::max<int64_t>(outs, 1) * model_->config().hidden_size));
  pp_fused_ = true;
  pp_micro_ = std::max(0, micro_batches);
  const Status st = forward_batch(ctx, kv, ids, seqs, n_seqs, pp_hidden_.data());
  pp_fused_ = false;
  pp_micro_ = 0;
  TERN_RETURN_IF_ERROR(st);
  if (!lead || outs == 0) return Status::ok();
  // Posted after this step's activations went out: the last stage sends these logits only once it has
  // them; an earlier step's logits were posted by its own start, so the receives complete in order.
  const int64_t bytes = outs * model_->config().vocab_size * int64_t(sizeof(float));
  return pp_->post_recv(logits, bytes, model_->pp().last_leader(), kPpTagLogits, pending);
}

Status Decoder::forward_logits_finish(PendingRecv& pending) {
  if (!pending.active()) return Status::ok();
  if (!pp_) return Status::error("forward_logits_finish: the model is not split into pipeline stages");
  return pp_->wait_recv(pending);
}

Status Decoder::pp_send_logits(ExecContext& ctx, const float* hidden, int64_t m) const {
  if (m == 0) return Status::ok();
  const PpLayout& p = model_->pp();
  const int64_t V = model_->config().vocab_size;
  // --ep: only the stage's first expert group holds the LM head (its other ranks have nothing to do).
  if (!model_->weights().lm_head.data) return Status::ok();
  pp_logits_.resize(size_t(m * V));
  pp_busy_start();
  if (tp_) TERN_RETURN_IF_ERROR(tp_logits(ctx, hidden, m, pp_logits_.data()));  // gathered on the stage's first rank
  else local_logits(ctx, hidden, m, pp_logits_.data());
  pp_busy_stop();
  if (p.tp_rank != 0) return Status::ok();
  return pp_->send(pp_logits_.data(), m * V * int64_t(sizeof(float)), 0, kPpTagLogits);
}

Status Decoder::pp_logits(ExecContext& ctx, const float* hidden, int64_t m, float* out) const {
  const PpLayout& p = model_->pp();
  const int64_t V = model_->config().vocab_size, H = model_->config().hidden_size;
  if (pp_->rank() == 0) {  // stage 0 never holds the LM head: announce, then wait for the logits
    StepHeader h;
    h.max_chunk = max_chunk_;
    h.rows = m;
    TERN_RETURN_IF_ERROR(broadcast_logits(*pp_, h, hidden, H));
    return pp_->recv(out, m * V * int64_t(sizeof(float)), p.last_leader(), kPpTagLogits);
  }
  if (!p.last()) return Status::ok();
  return pp_send_logits(ctx, hidden, m);
}

}  // namespace tern
