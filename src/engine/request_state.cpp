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
  arrived = EngineClock::now();
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

// The one place a logits row becomes a token (plain decoding and every verified row): a hook that
// edits the row before sampling (a constraint's mask) belongs here, and its accept() in emit(), so
// that it sees the accepted drafts one by one exactly as plain decoding would.
int32_t RequestState::choose(float* row, const int32_t* draft, const float* q, bool* accepted) {
  float* r = sampler_row(row);
  *accepted = false;
  if (!draft) return sampler_.sample(r);
  return sampler_.verify(r, *draft, q, accepted);
}

EngineFinish RequestState::on_logits(float* row, EngineOutput* out) {
  bool unused = false;
  const int32_t id = choose(row, nullptr, nullptr, &unused);
  const EngineFinish finish = emit(id, row, out);
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
    const int32_t id = choose(row, i < k ? drafts + i : nullptr, draft_probs && i < k ? draft_probs + i * vocab_ : nullptr, &ok);
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
    seq.tokens.push_back(id);
    sampler_.add_output(id);
    ++completion_;
    out->tokens.push_back(id);
    if (req_.top_logprobs >= 0) add_logprobs(raw, id, out);
    if (detok_) {
      out->text += stops_.push(detok_->push(id));
      if (stops_.stopped()) finish = EngineFinish::kStop;
    }
    if (finish == EngineFinish::kNone && completion_ >= max_new) finish = EngineFinish::kLength;
  }
  if (finish == EngineFinish::kLength || finish == EngineFinish::kEos) {
    flush_text(out);
    if (stops_.stopped()) finish = EngineFinish::kStop;
  }
  out->finish = finish;
  return finish;
}

}  // namespace tern
