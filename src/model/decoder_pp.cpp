// The decoder's part in pipeline parallelism (parallel/pp_layout.h): each stage runs its layers on
// a chunk and hands the residual stream [c, hidden] f32 to the same tensor-parallel index of the
// next stage; the last stage's first rank returns the final-normed hidden rows and, on the logits
// call, the logits to rank 0 (the only rank that samples).
#include <fmt/format.h>

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
  pp_logits_.resize(size_t(m * V));
  pp_busy_start();
  if (tp_) TERN_RETURN_IF_ERROR(tp_logits(ctx, hidden, m, pp_logits_.data()));  // gathered on the stage's first rank
  else local_logits(ctx, hidden, m, pp_logits_.data());
  pp_busy_stop();
  if (p.tp_rank != 0) return Status::ok();
  return pp_->send(pp_logits_.data(), m * V * int64_t(sizeof(float)), 0, kPpTagLogits);
}

}  // namespace tern
