// The decoder's part in tensor parallelism (parallel/tp_layout.h): rank 0 announces each call to the
// other ranks, every rank all-reduces its blocks' partial outputs, and the LM head's vocabulary
// slices are gathered to rank 0.
#include <fmt/format.h>

#include <cmath>
#include <cstring>

#include "model/decoder.h"
#include "ops/matmul.h"
#include "parallel/step_message.h"

namespace tern {

Status Decoder::announce_forward(const PagedKvCache& kv, const int32_t* ids, int64_t n_ids, const SeqStep* seqs,
                                 int n_seqs) {
  StepHeader h;
  h.max_chunk = max_chunk_;
  h.pool_id = uint64_t(reinterpret_cast<uintptr_t>(&kv));
  h.block_size = kv.block_size();
  h.kv_dtype = int64_t(kv.dtype());
  h.num_blocks = kv.num_blocks();
  h.n_ids = n_ids;
  h.micro_batches = pp_micro_;
  std::vector<StepSeq> ss(static_cast<size_t>(n_seqs));
  std::vector<const int32_t*> tables(static_cast<size_t>(n_seqs));
  for (int s = 0; s < n_seqs; ++s) {
    const SeqStep& q = seqs[s];
    // Only the blocks the step can touch (forward_batch checked the table holds them).
    const int64_t need = (q.pos0 + q.n_tokens + kv.block_size() - 1) / kv.block_size();
    ss[size_t(s)] = {q.pos0, q.n_tokens, need, q.n_out};
    tables[size_t(s)] = q.block_table;
  }
  return broadcast_forward(*world_, h, ids, ss, tables, pp_fused_ ? StepOp::kForwardLogits : StepOp::kForward);
}

Status Decoder::reduce_block(int64_t rows) {
  if (!tp_) return Status::ok();
  const int64_t H = model_->config().hidden_size;
  if (model_->tp_comm_mode() == TpCommMode::Int8) return tp_->all_reduce_sum_int8(block_out_.data(), rows, H, tp_pack_);
  return tp_->all_reduce_sum(block_out_.data(), rows * H);
}

Status Decoder::tp_logits(ExecContext& ctx, const float* hidden, int64_t m, float* out) const {
  const TransformerWeights& w = model_->weights();
  const TpLayout& t = model_->tp();
  const int64_t H = model_->config().hidden_size, V = model_->config().vocab_size, S = t.vocab_stride;
  if (!pp_ && world_->rank() == 0) {  // under pipeline parallelism rank 0 announced it (pp_logits)
    StepHeader h;
    h.max_chunk = max_chunk_;
    h.rows = m;
    TERN_RETURN_IF_ERROR(broadcast_logits(*world_, h, hidden, H));
  }
  // --tp with --ep: only rank 0's tensor-parallel group holds the LM head (the others' groups were
  // told too, as every rank hears every call, and have nothing to do).
  if (ep_ && !w.lm_head.data) return Status::ok();
  // local: [m, S], this rank's rows t.vocab of the LM head in the first t.vocab.size() columns.
  const int64_t vl = w.lm_head.rows;
  // [m, vl] computed into the front of the buffer, then spread in place to rows of S (last row first,
  // so nothing is overwritten before it moves); the buffer grows to the largest m once, then is reused.
  tp_logits_.resize(size_t(m * S));
  matmul(ctx, hidden, m, w.lm_head, tp_logits_.data());
  const float cap = w.final_logit_softcap;
  for (int64_t r = m - 1; r >= 0; --r) {
    for (int64_t j = S - 1; j >= 0; --j) {
      const float x = j < vl ? tp_logits_[size_t(r * vl + j)] : 0.f;
      tp_logits_[size_t(r * S + j)] = j < vl && cap > 0 ? std::tanh(x / cap) * cap : x;
    }
  }
  const bool root = tp_->rank() == 0;
  if (root) tp_gather_.resize(size_t(tp_->size() * m * S));
  TERN_RETURN_IF_ERROR(tp_->gather(tp_logits_.data(), m * S * int64_t(sizeof(float)), root ? tp_gather_.data() : nullptr, 0));
  if (!root) return Status::ok();
  // [T, m, S] -> out [m, V]: rank p's block holds vocabulary rows split_range(V, T, p).
  for (int p = 0; p < tp_->size(); ++p) {
    const TpRange vr = split_range(V, tp_->size(), p);
    for (int64_t r = 0; r < m; ++r) {
      std::memcpy(out + r * V + vr.begin, tp_gather_.data() + (int64_t(p) * m + r) * S, size_t(vr.size()) * sizeof(float));
    }
  }
  return Status::ok();
}

}  // namespace tern
