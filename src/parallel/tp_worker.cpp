#include "parallel/tp_worker.h"

#include <fmt/format.h>

#include <list>
#include <map>
#include <memory>

#include "kv/paged_kv_cache.h"
#include "model/decoder.h"
#include "parallel/step_message.h"

namespace tern {

namespace {

// Mirror pools, most recently used first. Rank 0 names a pool by its address; a pool it freed and
// another it allocated at the same address with another geometry replace each other here, and one
// with the same geometry is reused as is (every step writes a position's K/V before reading it).
class MirrorPools {
 public:
  explicit MirrorPools(const ModelConfig& cfg) : cfg_(&cfg) {}

  Result<PagedKvCache*> get(const StepHeader& h) {
    for (auto it = pools_.begin(); it != pools_.end(); ++it) {
      if (it->id != h.pool_id) continue;
      if (it->kv->block_size() != h.block_size || int64_t(it->kv->dtype()) != h.kv_dtype) {
        pools_.erase(it);
        break;
      }
      if (it->kv->num_blocks() < h.num_blocks) TERN_RETURN_IF_ERROR(it->kv->allocate(h.num_blocks));
      pools_.splice(pools_.begin(), pools_, it);
      return pools_.front().kv.get();
    }
    if (h.block_size <= 0 || h.num_blocks <= 0) return Status::error("step message: bad KV pool geometry");
    auto kv = std::make_unique<PagedKvCache>(*cfg_, int(h.block_size), KvDType(h.kv_dtype));
    TERN_RETURN_IF_ERROR(kv->allocate(h.num_blocks));
    pools_.push_front({h.pool_id, std::move(kv)});
    if (pools_.size() > kMaxPools) pools_.pop_back();
    return pools_.front().kv.get();
  }

 private:
  // Rank 0 holds one pool per engine, per `tern run` sequence or per perplexity window cache; more
  // than a few alive at once would be a new use to size this for.
  static constexpr size_t kMaxPools = 8;
  struct Entry {
    uint64_t id;
    std::unique_ptr<PagedKvCache> kv;
  };
  const ModelConfig* cfg_;
  std::list<Entry> pools_;
};

}  // namespace

Status run_tp_worker(const Model& model, ExecContext& ctx, Communicator& comm) {
  if (comm.rank() == 0) return Status::error("run_tp_worker: rank 0 drives the model, it does not serve it");
  const int64_t H = model.config().hidden_size;
  std::map<int64_t, std::unique_ptr<Decoder>> decoders;  // by max_chunk
  MirrorPools pools(model.config());
  StepHeader h;
  StepPayload p;
  std::vector<SeqStep> steps;
  std::vector<float> hidden, logits;
  for (;;) {
    TERN_RETURN_IF_ERROR(receive_step(comm, H, h, p));
    if (h.op == StepOp::kStop) return Status::ok();
    if (h.max_chunk <= 0 || h.max_chunk > (int64_t(1) << 24)) return Status::error("step message: bad chunk size");
    std::unique_ptr<Decoder>& dec = decoders[h.max_chunk];
    if (!dec) dec = std::make_unique<Decoder>(model, h.max_chunk);
    if (h.op == StepOp::kLogits) {
      TERN_RETURN_IF_ERROR(dec->logits(ctx, p.hidden.data(), h.rows, nullptr));
      continue;
    }
    TERN_ASSIGN_OR_RETURN(PagedKvCache* kv, pools.get(h));
    steps.resize(p.seqs.size());
    int64_t outs = 0, table = 0;
    for (size_t i = 0; i < p.seqs.size(); ++i) {
      const StepSeq& s = p.seqs[i];
      steps[i] = {s.pos0, s.n_tokens, p.tables.data() + table, s.n_blocks, s.n_out};
      table += s.n_blocks;
      outs += s.n_out;
    }
    if (h.micro_batches < 0 || h.micro_batches > 4096) return Status::error("step message: bad micro-batch count");
    if (h.op == StepOp::kForwardLogits) {  // pipeline: the last stage sends the logits to rank 0 itself
      TERN_RETURN_IF_ERROR(
          dec->forward_logits_start(ctx, *kv, p.ids.data(), steps.data(), int(steps.size()), nullptr, nullptr,
                                    int(h.micro_batches)));
      continue;
    }
    hidden.resize(size_t(std::max<int64_t>(outs, 1) * H));
    TERN_RETURN_IF_ERROR(
        dec->forward_batch(ctx, *kv, p.ids.data(), steps.data(), int(steps.size()), hidden.data()));
  }
}

}  // namespace tern
