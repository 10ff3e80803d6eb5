// EngineCore's speculative decoding (speculative_config.h, docs/speculative.md). One step:
//   1. propose_drafts: for each running sequence about to decode one token, the drafter proposes up
//      to k tokens; they are appended to its tokens (Sequence::num_draft), so the scheduler gives it
//      1 + k tokens and the runner computes k + 1 logits rows: after the last verified token and
//      after each draft.
//   2. the scheduler may cut drafts to its budget and to the blocks available (never preempting for
//      them); drop_unscheduled_drafts takes off those of sequences that got no tokens this step.
//   3. verify: the drafts come off the sequence again and RequestState::on_verify emits the accepted
//      ones and one token of the target's own; Scheduler::rollback returns the KV past them.
#include <fmt/format.h>

#include <algorithm>
#include <cstdio>

#include "engine/engine_core.h"

namespace tern {

void EngineCore::propose_drafts() {
  const SpeculativeConfig& sc = config_.speculative;
  std::vector<RequestState*> decoding;
  for (Sequence* s : scheduler_.running()) {
    if (s->num_draft == 0 && s->decoding()) decoding.push_back(requests_.at(s->id).get());
  }
  // Past this batch the extra rows stop being nearly free: plain decoding.
  if (decoding.empty() || int64_t(decoding.size()) > sc.disable_by_batch_size) return;
  // Draft rows: what is left below max_batch_rows once every decoding sequence has its row, and
  // what the runner can give beyond one logits row per running sequence.
  const int64_t rows = std::min<int64_t>(sc.max_batch_rows - int64_t(decoding.size()),
                                         runner_.max_logits_per_sequence() - int64_t(scheduler_.running().size()));
  // A drafter that sizes its own proposals is asked for up to all the rows by every sequence and the
  // rows go to the proposals in turn (most come back shorter than asked; a lookup costs nothing);
  // any other has the rows shared out before it drafts, so it never computes drafts that are cut.
  const bool sized_by_drafter = drafter_->sizes_drafts();
  int64_t rows_left = rows;
  slots_.clear();
  for (RequestState* r : decoding) {
    const Sequence& s = r->seq;
    auto [it, fresh] = draft_state_.try_emplace(s.id, sc.num_speculative_tokens, sized_by_drafter);
    const DraftPacer::Ask ask = it->second.next();  // 0 tokens: its drafts were all rejected lately, a pause
    int64_t k = ask.max_tokens;
    // Drafts past max_new or the context would never be emitted, and their KV slots were never
    // counted when the request was admitted (EngineCore::validate).
    k = std::min(k, r->max_new - r->completion_tokens() - 1);
    k = std::min(k, runner_.max_context() - s.known());
    k = std::min(k, rows_left);
    if (k <= 0) continue;
    if (!sized_by_drafter) rows_left -= k;
    DraftSlot& slot = slots_.emplace_back();
    slot.seq = &s;
    slot.max_tokens = k;
    slot.allow_tentative = ask.allow_tentative;
  }
  if (slots_.empty()) return;
  const Status st = drafter_->propose(slots_);
  if (!st.is_ok()) {  // drafting is an optimisation: decode normally this step
    std::fprintf(stderr, "[tern] speculative drafter %s: %s\n", drafter_->name(), st.message().c_str());
    return;
  }
  rows_left = rows;
  for (DraftSlot& d : slots_) {
    const int64_t k = std::min<int64_t>({int64_t(d.tokens.size()), d.max_tokens, rows_left});
    if (k <= 0) continue;
    Sequence& s = requests_.at(d.seq->id)->seq;
    bool valid = true;
    for (int64_t i = 0; i < k; ++i) valid = valid && d.tokens[size_t(i)] >= 0 && d.tokens[size_t(i)] < vocab_;
    if (!valid) continue;  // a drafter's bug must not reach the model
    rows_left -= k;
    s.tokens.insert(s.tokens.end(), d.tokens.begin(), d.tokens.begin() + k);
    s.num_draft = k;
    draft_state_.at(s.id).proposed(d.tentative);
    if (!d.probs.empty() && int64_t(d.probs.size()) >= k * vocab_) {
      d.probs.resize(size_t(k * vocab_));
      draft_probs_[s.id] = std::move(d.probs);
    } else {
      draft_probs_.erase(s.id);
    }
  }
}

void EngineCore::drop_unscheduled_drafts() {
  for (Sequence* s : scheduler_.running()) {
    if (s->num_draft > 0 && s->scheduled == 0) s->drop_drafts(s->num_draft);
  }
}

EngineFinish EngineCore::verify(RequestState& r, float* rows, EngineOutput* out) {
  Sequence& s = r.seq;
  const int64_t k = s.num_draft;
  const std::vector<int32_t> drafts(s.tokens.end() - k, s.tokens.end());
  s.drop_drafts(k);
  const float* q = nullptr;
  auto pit = draft_probs_.find(s.id);
  if (pit != draft_probs_.end() && int64_t(pit->second.size()) >= k * vocab_) q = pit->second.data();
  int64_t accepted = 0;
  const size_t before = out->tokens.size();
  const EngineFinish fin = r.on_verify(rows, drafts.data(), k, q, out, &accepted);
  if (pit != draft_probs_.end()) draft_probs_.erase(pit);
  spec_drafted_ += k;
  spec_accepted_ += accepted;
  spec_steps_ += 1;
  spec_emitted_ += int64_t(out->tokens.size() - before);
  // The next draft length, or a pause (DraftPacer, speculative_config.h).
  draft_state_.try_emplace(s.id, config_.speculative.num_speculative_tokens, drafter_->sizes_drafts())
      .first->second.after_step(k, accepted);
  if (fin == EngineFinish::kNone) scheduler_.rollback(&s);
  return fin;
}

}  // namespace tern
