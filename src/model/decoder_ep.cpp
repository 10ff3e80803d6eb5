// The decoder's part in expert parallelism (model/ep_shard.h). Every rank runs the whole decoder on
// the same rows (rank 0 announces each call, as under tensor parallelism), so each already holds the
// tokens routed to its experts: dispatch costs nothing, and the combine is one all-reduce of the
// routed outputs [rows, hidden] per MoE layer. With top-2 routing the sum is bit-identical to the
// single process's (each row adds its two experts' weighted outputs in expert order, and a rank
// that holds neither adds zero); the shared expert is added after the sum, on every rank.
#include "model/decoder.h"

namespace tern {

Status Decoder::ep_moe(ExecContext& ctx, const MoeWeights& w, const BlockStep& step, float* xn, float* out) {
  const int64_t H = model_->config().hidden_size;
  step.observe(LinearInput::kMlpIn, xn, H);
  moe_->forward_routed(ctx, w, xn, step.rows, out, &step);
  TERN_RETURN_IF_ERROR(ep_->all_reduce_sum(out, step.rows * H));
  moe_->add_shared(ctx, w, xn, step.rows, out, &step);
  return Status::ok();
}

}  // namespace tern
