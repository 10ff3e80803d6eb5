// The forward pass of a decoder-only transformer on the CPU, generic over architectures: each layer
// is a composition of blocks (model/blocks/: norm, attention, feed-forward) and what differs between
// architectures (norm kinds, biases, q/k norm, rotary layout, sliding window, post-norms, embedding
// scale, learned positions, logit soft-capping) was chosen when the weights were bound.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "core/scratch_vector.h"
#include "core/status.h"
#include "model/model.h"
#include "kv/paged_kv_cache.h"
#include "kv/sequence_kv_cache.h"
#include "core/exec_context.h"
#include "model/blocks/attention.h"
#include "model/blocks/block_step.h"
#include "model/blocks/feed_forward.h"
#include "model/blocks/mla_attention.h"
#include "model/blocks/moe.h"
#include "ops/paged_attention.h"

namespace tern {

// One sequence's part of a batched forward: n_tokens new tokens at positions pos0 .. pos0 + n_tokens - 1
// whose K/V go into (and whose attention reads) the blocks of block_table; the final-normed hidden
// states of its last n_out tokens are returned.
struct SeqStep {
  int64_t pos0 = 0;
  int64_t n_tokens = 0;
  const int32_t* block_table = nullptr;
  int64_t n_blocks = 0;
  int64_t n_out = 0;
};

class Decoder {
 public:
  // At most `max_chunk` token rows go through the layers at once (a longer batch or prompt is cut
  // into consecutive chunks), which bounds the activations; all of them are allocated here.
  explicit Decoder(const Model& model, int64_t max_chunk = 512);

  // The one forward: a ragged batch of sequences (prompt chunks and decode tokens) over a paged
  // pool. ids: [Σ n_tokens] in sequence order. hidden_out: [Σ n_out, hidden], sequence order.
  // Every matmul runs over the concatenated rows, so a batch of decode tokens costs one weight
  // pass. Errors (nothing computed): an id outside the vocabulary, a block table too short for
  // its positions or naming a block outside the pool, n_out out of range.
  Status forward_batch(ExecContext& ctx, PagedKvCache& kv, const int32_t* ids, const SeqStep* seqs, int n_seqs,
                       float* hidden_out);

  // One sequence: appends ids [n] to the sequence held in `kv` (positions kv.length() ..) and
  // writes the final-normed hidden states of the last `n_out` of them into hidden_out [n_out,
  // hidden]. Errors: an id outside the vocabulary, or the cache is full.
  Status forward(ExecContext& ctx, SequenceKvCache& kv, const int32_t* ids, int64_t n, int64_t n_out,
                 float* hidden_out);

  // logits [m, vocab] = hidden [m, hidden] · lm_headᵀ (then soft-capped when the model says so).
  // Under tensor parallelism each rank computes its vocabulary rows and rank 0 gathers them: out is
  // written on rank 0 only. Errors: a failed collective.
  Status logits(ExecContext& ctx, const float* hidden, int64_t m, float* out) const;

  // Pipeline parallelism (decoder_pp.cpp): forward_batch, then the logits [Σ n_out, vocab] of its
  // output rows, computed by the last stage right after its layers (no hidden rows back to rank 0,
  // no second announce). On rank 0 it returns once this stage's part is sent on, with the receive of
  // the logits posted in `pending` (left inactive when no row wants logits); forward_logits_finish
  // waits for them. Steps finish in the order they started, so rank 0 can keep several in the
  // pipeline (the engine's groups of requests: engine_core.h). The other ranks (the worker) pass
  // null logits and pending. Errors: as forward_batch, or not a pipeline.
  // micro_batches: the step's row chunks over the stages (0: the layout's --pp-micro-batches); rank 0
  // announces it, so every stage cuts the same chunks.
  Status forward_logits_start(ExecContext& ctx, PagedKvCache& kv, const int32_t* ids, const SeqStep* seqs, int n_seqs,
                              float* logits, PendingRecv* pending, int micro_batches = 0);
  Status forward_logits_finish(PendingRecv& pending);

  const Model& model() const { return *model_; }
  int64_t max_chunk() const { return max_chunk_; }
  // Sees every linear layer's input from now on (null: none). Not owned.
  void set_observer(ActivationObserver* observer) { observer_ = observer; }
  // Runs only layers [0, n) from now on (n <= 0: all), for calibration passes that need the inputs of
  // one layer (sequential GPTQ); hidden_out is then the final norm of layer n - 1's output.
  void set_layer_limit(int n) { layer_limit_ = n; }
  // The mixture-of-experts block's work counters over every MoE layer of every forward since
  // construction (benchmarks: distinct experts read per step); null for a dense model.
  MoeBlock* moe_block() { return moe_.get(); }

 private:
  // A run of one sequence's tokens inside a chunk: its tokens off .. off + n - 1 of this step.
  struct Piece {
    int seq;
    int64_t off, n;
  };
  Status forward_chunk(ExecContext& ctx, PagedKvCache& kv, const int32_t* ids, const SeqStep* seqs,
                       const int64_t* out_base, float* hidden_out);
  // Tensor parallelism, rank 0: tells the other ranks which forward_batch to run (parallel/step_message.h).
  Status announce_forward(const PagedKvCache& kv, const int32_t* ids, int64_t n_ids, const SeqStep* seqs, int n_seqs);
  // Sums a block's partial output [rows, hidden] over the ranks (no-op without tensor parallelism).
  Status reduce_block(int64_t rows);
  // logits() under tensor parallelism: local vocabulary rows, gathered to rank 0.
  Status tp_logits(ExecContext& ctx, const float* hidden, int64_t m, float* out) const;
  // Pipeline parallelism (decoder_pp.cpp): a stage after the first receives the residual stream of a
  // chunk [c, hidden] into x_; one before the last sends it on; the final hidden rows and the logits
  // go from the last stage back to rank 0.
  Status pp_receive(int64_t c);
  Status pp_send(int64_t c);
  Status pp_return_hidden(float* hidden_out, int64_t outs);
  Status pp_logits(ExecContext& ctx, const float* hidden, int64_t m, float* out) const;
  // The last stage's logits of its m hidden rows, sent to rank 0 by its first rank (tag kPpTagLogits).
  Status pp_send_logits(ExecContext& ctx, const float* hidden, int64_t m) const;
  // Expert parallelism (decoder_ep.cpp): this rank's routed experts, the sum over the ranks, then the
  // shared expert (replicated) — out [rows, hidden] as the whole MoE block computes it.
  Status ep_moe(ExecContext& ctx, const MoeWeights& w, const BlockStep& step, float* xn, float* out);
  // logits [m, lm_head rows] of this process's LM head, soft-capped.
  void local_logits(ExecContext& ctx, const float* hidden, int64_t m, float* out) const;
  // Busy time of a pipeline stage (PpStats): start() / stop() around compute.
  void pp_busy_start() const;
  void pp_busy_stop() const;

  const Model* model_;
  Communicator* tp_;  // null: the whole model on this process (else this rank's tensor-parallel group)
  Communicator* pp_;  // pipeline parallelism: the whole job (null: one stage)
  Communicator* ep_;  // expert parallelism: the ranks holding the other experts (null: all here)
  Communicator* world_;  // whom rank 0 announces each call to: pp_, else tp_, else ep_
  mutable int64_t busy_t0_ = 0;  // pp_busy_start()'s clock
  bool pp_fused_ = false;        // inside forward_logits_start: the last stage computes the logits
  int pp_micro_ = 0;             // inside forward_logits_start: its micro-batches (0: the layout's)
  std::vector<float> pp_hidden_; // [Σ n_out, hidden] the last stage's output rows in forward_logits_start
  int64_t max_chunk_;
  ActivationObserver* observer_ = nullptr;
  int layer_limit_ = 0;
  // Activations for one chunk of c token rows:
  ScratchVector<float> x_;        // [c, hidden] residual stream
  ScratchVector<float> xn_;       // [c, hidden] normed input of a block
  ScratchVector<float> block_out_;// [c, hidden] output of the last block, added into x_ by the next norm
  std::vector<int8_t> tp_pack_; // --tp-comm int8: [T + 1, c · (hidden + 4)] the packed partial sums
  std::vector<int32_t> positions_;  // [c]
  // The blocks, each with its own activations for max_chunk_ rows:
  AttentionBlock attn_;
  FeedForwardBlock ffn_;
  std::unique_ptr<MlaAttention> mla_;  // models with multi-head latent attention
  std::unique_ptr<MoeBlock> moe_;      // models with mixture-of-experts layers
  // Per-step bookkeeping, reused:
  std::vector<Piece> pieces_;          // the current chunk
  std::vector<PagedAttnSeq> attn_seqs_;// one per piece
  std::vector<int64_t> out_base_;      // [n_seqs] first hidden_out row of each sequence
  mutable std::vector<float> tp_logits_;  // [m, vocab_stride] this rank's LM head rows (tensor parallel)
  mutable std::vector<float> tp_gather_;  // [T, m, vocab_stride] on rank 0
  mutable std::vector<float> pp_logits_;  // [m, vocab] on the last stage's first rank
};

}  // namespace tern
