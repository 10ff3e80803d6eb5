#include "engine/request_state.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <numeric>

namespace tern {

RequestState::RequestState(RequestId id, EngineRequest request, OutputCallback cb, const Tokenizer* tokenizer,
                           int64_t vocab_size, int64_t max_new_tokens, uint64_t arrival)
    : callback(std::move(cb)), max_new(max_new_tokens), id_(id), req_(std::move(request)), vocab_(vocab_size),
      sampler_(req_.sampling, vocab_size), stops_(req_.stop) {
  seq.id = id;
  seq.tokens = req_.prompt;
  seq.prompt_len = int64_t(req_.prompt.size());
  seq.priority = req_.priority;
  seq.arrival = arrival;
  sampler_.add_prompt(req_.prompt);
  if (tokenizer) detok_.emplace(*tokenizer);
  if (req_.grammar) constraint_.emplace(req_.grammar);
  arrived = EngineClock::now();
}

bool RequestState::apply_grammar(float* row) {
  const int64_t gv = std::min(constraint_->vocab_size(), vocab_);
  mask_.resize(size_t((vocab_ + 31) / 32));
  constraint_->allowed(mask_.data());
  const bool eos_ok = constraint_->can_end() && !req_.ignore_eos;
  float eos_logits[8];
  const size_t n_eos = std::min<size_t>(req_.eos_ids.size(), 8);
  for (size_t i = 0; i < n_eos; ++i) {
    const int32_t e = req_.eos_ids[i];
    eos_logits[i] = e >= 0 && e < vocab_ ? row[e] : -INFINITY;
  }
  bool any = false;
  for (int64_t w = 0; w * 32 < vocab_; ++w) {
    uint32_t m = w * 32 < gv ? mask_[size_t(w)] : 0;
    if (w * 32 + 32 > gv && w * 32 < gv) m &= (gv - w * 32 >= 32) ? ~0u : ((1u << (gv - w * 32)) - 1);
    any = any || m != 0;
    if (m == ~0u) continue;
    const int64_t end = std::min<int64_t>(vocab_, w * 32 + 32);
    for (int64_t t = w * 32; t < end; ++t)
      if (!(m >> (t - w * 32) & 1)) row[t] = -INFINITY;
  }
  if (eos_ok) {
    for (size_t i = 0; i < n_eos; ++i) {
      const int32_t e = req_.eos_ids[i];
      if (e >= 0 && e < vocab_) row[e] = eos_logits[i], any = true;
    }
  }
  return any;
}

void RequestState::fill_counts(EngineOutput* out) const {
  out->prompt_tokens = seq.prompt_len;
  out->cached_prompt_tokens = cached_prompt_tokens;
  out->completion_tokens = completion_;
}

// log-softmax of the raw logits (before penalties and temperature), as vLLM reports by default.
void RequestState::add_logprobs(const float* raw, int32_t id, EngineOutput* out) {
  float mx = -INFINITY;
  for (int64_t v = 0; v < vocab_; ++v) mx = std::max(mx, raw[v]);
  double sum = 0;
  for (int64_t v = 0; v < vocab_; ++v) sum += std::exp(double(raw[v]) - double(mx));
  const float lse = mx + float(std::log(sum));
  out->logprobs.push_back(raw[id] - lse);
  std::vector<TokenLogprob> top;
  const int64_t n = std::min<int64_t>(req_.top_logprobs, vocab_);
  if (n > 0) {
    std::vector<int32_t> idx(static_cast<size_t>(vocab_));
    std::iota(idx.begin(), idx.end(), 0);
    std::partial_sort(idx.begin(), idx.begin() + n, idx.end(), [raw](int32_t a, int32_t b) {
      return raw[a] != raw[b] ? raw[a] > raw[b] : a < b;
    });
    for (int64_t i = 0; i < n; ++i) top.push_back({idx[size_t(i)], raw[idx[size_t(i)]] - lse});
  }
  out->top.push_back(std::move(top));
}

void RequestState::flush_text(EngineOutput* out) {
  if (!detok_ || stops_.stopped()) return;
  const std::string tail = stops_.push(detok_->flush());
  out->text += stops_.stopped() ? tail : tail + stops_.flush();
}

// The raw row is kept for logprobs: the sampler edits its own copy.
float* RequestState::sampler_row(float* row) {
  if (req_.top_logprobs < 0) return row;
  scratch_.resize(size_t(vocab_));
  std::memcpy(scratch_.data(), row, sizeof(float) * size_t(vocab_));
  return scratch_.data();
}

// The one place a logits row becomes a token (plain decoding and every verified row): the
// constraint's mask is applied here and its accept() runs in emit(), so a verified row sees the
// grammar state after the drafts accepted before it, exactly as plain decoding would, and a draft
// the grammar forbids has p = 0 and is rejected. Returns kNone with *id set, or the finish when the
// grammar is complete (or stuck) before this row.
EngineFinish RequestState::choose(float* row, const int32_t* draft, const float* q, int32_t* id, bool* accepted,
                                  EngineOutput* out) {
  float* r = sampler_row(row);
  *accepted = false;
  if (constraint_ && (constraint_->must_end() || !apply_grammar(r))) {
    // The grammar is complete (or, with a vocabulary that cannot spell what it needs, stuck): finish cleanly.
    const bool done = constraint_->can_end();
    flush_text(out);
    out->finish = done ? EngineFinish::kStop : EngineFinish::kError;
    if (!done) out->error = "the grammar allows no token of this vocabulary here";
    return out->finish;
  }
  *id = draft ? sampler_.verify(r, *draft, q, accepted) : sampler_.sample(r);
  return EngineFinish::kNone;
}

EngineFinish RequestState::on_logits(float* row, EngineOutput* out) {
  bool unused = false;
  int32_t id = 0;
  EngineFinish finish = choose(row, nullptr, nullptr, &id, &unused, out);
  if (finish == EngineFinish::kNone) finish = emit(id, row, out);
  fill_counts(out);
  return finish;
}

EngineFinish RequestState::on_verify(float* rows, const int32_t* drafts, int64_t k, const float* draft_probs,
                                     EngineOutput* out, int64_t* accepted) {
  *accepted = 0;
  EngineFinish finish = EngineFinish::kNone;
  // Row i predicts the token after draft i - 1; the emission of each token (penalty counts, stop
  // strings, EOS, max_new) happens before the next row is judged, exactly as one step at a time.
  for (int64_t i = 0; i <= k && finish == EngineFinish::kNone; ++i) {
    float* row = rows + i * vocab_;
    bool ok = false;  // row k (every draft accepted) gives the bonus token: a plain sample
    int32_t id = 0;
    finish = choose(row, i < k ? drafts + i : nullptr, draft_probs && i < k ? draft_probs + i * vocab_ : nullptr, &id, &ok,
                    out);
    if (finish != EngineFinish::kNone) break;
    finish = emit(id, row, out);
    if (ok) ++*accepted;
    if (!ok) break;  // the corrected token (or the bonus) ends the step
  }
  fill_counts(out);
  return finish;
}

EngineFinish RequestState::emit(int32_t id, const float* raw, EngineOutput* out) {
  const auto now = EngineClock::now();
  has_first_token = true;
  last_token = now;
  const bool is_eos = std::find(req_.eos_ids.begin(), req_.eos_ids.end(), id) != req_.eos_ids.end();
  EngineFinish finish = EngineFinish::kNone;
  if (is_eos && !req_.ignore_eos) {
    finish = EngineFinish::kEos;
  } else {
    bool grammar_done = false;
    if (constraint_) {
      if (!constraint_->accept(id).is_ok()) {  // cannot happen: the mask allowed it
        out->finish = EngineFinish::kError;
        out->error = "internal: the sampled token does not fit the grammar";
        fill_counts(out);
        return out->finish;
      }
      grammar_done = constraint_->must_end();
    }
    seq.tokens.push_back(id);
    sampler_.add_output(id);
    ++completion_;
    out->tokens.push_back(id);
    if (req_.top_logprobs >= 0) add_logprobs(raw, id, out);
    if (detok_) {
      out->text += stops_.push(detok_->push(id));
      if (stops_.stopped()) finish = EngineFinish::kStop;
    }
    if (finish == EngineFinish::kNone && grammar_done) {
      flush_text(out);
      finish = EngineFinish::kStop;
    }
    if (finish == EngineFinish::kNone && completion_ >= max_new) finish = EngineFinish::kLength;
  }
  if (finish == EngineFinish::kLength || finish == EngineFinish::kEos) {
    flush_text(out);
    if (stops_.stopped()) finish = EngineFinish::kStop;
  }
  if (finish == EngineFinish::kStop) out->stop_string = stops_.matched();
  out->finish = finish;
  return finish;
}

}  // namespace tern
