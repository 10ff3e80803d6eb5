// The decoder's part in expert parallelism (model/ep_shard.h). Every rank runs the whole decoder on
// the same rows (rank 0 announces each call, as under tensor parallelism), so each already holds the
// tokens routed to its experts: dispatch costs nothing, and the combine is one all-reduce of the
// routed outputs [rows, hidden] per MoE layer. With top-2 routing the sum is bit-identical to the
// single process's (each row adds its two experts' weighted outputs in expert order, and a rank
// that holds neither adds zero); the shared expert is added after the sum, on every rank.
//
// With tensor parallelism (--tp T --ep E): each rank's routed output is its expert group's experts
// cut to its intermediate columns, and the first group's ranks add their columns of the shared
// expert too (the others hold none: model/ep_shard.h), so ONE all-reduce over all T·E ranks sums
// the layer's output — the tensor-parallel FFN all-reduce and the expert combine in one.
#include "model/decoder.h"

namespace tern {

Status Decoder::ep_moe(ExecContext& ctx, const MoeWeights& w, const BlockStep& step, float* xn, float* out) {
  const int64_t H = model_->config().hidden_size;
  step.observe(LinearInput::kMlpIn, xn, H);
  moe_->forward_routed(ctx, w, xn, step.rows, out, &step);
  if (tp_) {
    moe_->add_shared(ctx, w, xn, step.rows, out, &step);  // partial, or nothing outside the first group
    return ep_->all_reduce_sum(out, step.rows * H);
  }
  TERN_RETURN_IF_ERROR(ep_->all_reduce_sum(out, step.rows * H));
  moe_->add_shared(ctx, w, xn, step.rows, out, &step);
  return Status::ok();
}

}  // namespace tern
