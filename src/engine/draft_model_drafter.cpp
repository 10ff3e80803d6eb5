#include "engine/draft_model_drafter.h"

#include <fmt/format.h>

#include <algorithm>

#include "runtime/sampler.h"

namespace tern {

Result<std::unique_ptr<DraftModelDrafter>> DraftModelDrafter::create(std::shared_ptr<const Model> model,
                                                                     ExecContext& ctx, int64_t target_vocab,
                                                                     const DraftModelOptions& o) {
  if (!model) return Status::error("draft model: none given");
  const int64_t v = model->config().vocab_size;
  if (v != target_vocab)
    return Status::error(fmt::format("draft model: its vocabulary has {} tokens but the model's has {} "
                                     "(speculative decoding needs the same tokenizer)", v, target_vocab));
  if (o.num_blocks < 1 || o.block_size < 1) return Status::error("draft model: empty KV pool");
  auto d = std::unique_ptr<DraftModelDrafter>(new DraftModelDrafter(std::move(model), ctx, o));
  TERN_RETURN_IF_ERROR(d->runner_.allocate_kv({o.num_blocks, o.block_size, o.kv_dtype}));
  return d;
}

DraftModelDrafter::DraftModelDrafter(std::shared_ptr<const Model> model, ExecContext& ctx, const DraftModelOptions& o)
    : model_(std::move(model)), runner_(*model_, ctx, o.max_step_tokens, std::max<int64_t>(1, o.max_sequences)),
      kv_(o.num_blocks, o.block_size, /*prefix_caching=*/false) {}

void DraftModelDrafter::release(uint64_t id) {
  kv_.release(id);
  fed_.erase(id);
}

// One forward over the active sequences: in the catch-up pass each feeds the target's tokens it
// has not seen; afterwards each feeds its own last draft. Each gets one greedy token.
Status DraftModelDrafter::run(std::vector<Active>& active, bool catch_up) {
  batch_.token_ids.clear();
  batch_.seqs.clear();
  for (Active& a : active) {
    const int64_t pos0 = int64_t(a.fed->size());
    if (catch_up) {
      const auto& t = a.slot->seq->tokens;
      batch_.token_ids.insert(batch_.token_ids.end(), t.begin() + pos0, t.end());
      a.fed->insert(a.fed->end(), t.begin() + pos0, t.end());
    } else {
      batch_.token_ids.push_back(a.slot->tokens.back());
      a.fed->push_back(a.slot->tokens.back());
    }
    const auto& table = kv_.table(a.slot->seq->id);
    batch_.seqs.push_back({pos0, int64_t(a.fed->size()) - pos0, table.data(), int64_t(table.size()), true, 1});
  }
  const int64_t vocab = model_->config().vocab_size;
  logits_.resize(size_t(int64_t(active.size()) * vocab));
  TERN_RETURN_IF_ERROR(runner_.forward(batch_, logits_.data()));
  for (size_t i = 0; i < active.size(); ++i) active[i].slot->tokens.push_back(argmax(logits_.data() + i * vocab, vocab));
  return Status::ok();
}

Status DraftModelDrafter::propose(std::vector<DraftSlot>& slots) {
  std::vector<Active> active;
  for (DraftSlot& s : slots) {
    s.tokens.clear();
    s.probs.clear();
    const auto& t = s.seq->tokens;
    const int64_t L = int64_t(t.size());
    const uint64_t id = s.seq->id;
    std::vector<int32_t>& fed = fed_[id];
    // Keep the longest prefix the draft KV holds that the sequence still has (rejected drafts and
    // a recomputed sequence fall out here), and always feed at least the last token.
    int64_t common = 0;
    const int64_t lim = std::min<int64_t>(int64_t(fed.size()), L - 1);
    while (common < lim && fed[size_t(common)] == t[size_t(common)]) ++common;
    fed.resize(size_t(common));
    if (!kv_.has(id)) {
      auto st = kv_.start(id, std::span<const int32_t>(), 0);
      if (!st.is_ok()) continue;
    }
    kv_.truncate(id, common);
    int64_t k = std::min<int64_t>(s.max_tokens, runner_.max_context() - L + 1);
    while (k > 0 && !kv_.ensure(id, L + k - 1)) --k;  // a full draft pool: fewer drafts
    if (k <= 0) continue;
    active.push_back({&s, &fed, k});
  }
  for (bool first = true; !active.empty(); first = false) {
    const Status st = run(active, first);
    if (!st.is_ok()) {  // the KV of what was fed may be half written: start these over next time
      for (Active& a : active) {
        a.fed->clear();
        a.slot->tokens.clear();
      }
      return st;
    }
    std::erase_if(active, [](const Active& a) { return int64_t(a.slot->tokens.size()) >= a.target; });
  }
  return Status::ok();
}

}  // namespace tern
