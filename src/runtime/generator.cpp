#include "runtime/generator.h"

#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <optional>

#include "runtime/sampler.h"

namespace tern {

const char* finish_reason_name(FinishReason r) {
  switch (r) {
    case FinishReason::kLength: return "length";
    case FinishReason::kEos: return "eos";
    case FinishReason::kStop: return "stop";
  }
  return "?";
}

std::string StopMatcher::push(std::string_view text) {
  if (stopped_) return {};
  pending_ += text;
  size_t first = std::string::npos;
  for (const auto& s : stops_) {
    if (s.empty()) continue;
    const size_t at = pending_.find(s);
    if (at != std::string::npos && (at < first || (at == first && s.size() < matched_.size()))) {
      first = at;
      matched_ = s;
    }
  }
  if (first != std::string::npos) {
    stopped_ = true;
    std::string out = pending_.substr(0, first);
    pending_.clear();
    return out;
  }
  // Hold back the longest suffix of pending_ that is a proper prefix of some stop string.
  size_t hold = 0;
  for (const auto& s : stops_) {
    for (size_t len = std::min(s.size() - (s.empty() ? 0 : 1), pending_.size()); len > hold; --len) {
      if (pending_.compare(pending_.size() - len, len, s, 0, len) == 0) {
        hold = len;
        break;
      }
    }
  }
  std::string out = pending_.substr(0, pending_.size() - hold);
  pending_.erase(0, pending_.size() - hold);
  return out;
}

std::string StopMatcher::flush() {
  std::string out;
  if (!stopped_) out.swap(pending_);
  return out;
}

namespace {
int64_t context_of(const ModelConfig& cfg) {
  return cfg.max_position_embeddings > 0 ? cfg.max_position_embeddings : int64_t(1) << 20;
}
}  // namespace

GenerationSession::GenerationSession(const ModelConfig& cfg, KvDType dtype) : kv_(cfg, context_of(cfg), dtype) {}

Generator::Generator(const Model& model, const Tokenizer* tokenizer, ExecContext& ctx, int64_t max_chunk)
    : model_(&model), tokenizer_(tokenizer), ctx_(&ctx), decoder_(model, max_chunk) {}

Result<GenerationResult> Generator::generate(const GenerationRequest& req,
                                             const std::function<void(std::string_view)>& on_text,
                                             GenerationSession* session) {
  using Clock = std::chrono::steady_clock;
  const ModelConfig& cfg = model_->config();
  TERN_RETURN_IF_ERROR(req.sampling.validate());
  if (req.prompt.empty()) return Status::error("the prompt is empty (no tokens)");
  if (req.max_new_tokens < 0) return Status::error("max_new_tokens must be >= 0");
  const int64_t context = context_of(cfg);
  if (int64_t(req.prompt.size()) > context) {
    return Status::error(fmt::format("the prompt has {} tokens but the model's context is {}", req.prompt.size(), context));
  }
  const int64_t max_new = std::min<int64_t>(req.max_new_tokens, context - int64_t(req.prompt.size()));
  if (session && session->kv_dtype() != req.kv_dtype) {
    return Status::error(fmt::format("the session's KV cache is {}, the request's {}",
                                     kv_dtype_name(session->kv_dtype()), kv_dtype_name(req.kv_dtype)));
  }
  std::optional<SequenceKvCache> own;
  if (!session) own.emplace(cfg, int64_t(req.prompt.size()) + std::max<int64_t>(max_new, 1), req.kv_dtype);
  SequenceKvCache& kv = session ? session->kv_ : *own;
  // The session's K/V of the prompt's longest cached prefix stays; the last prompt token is always
  // computed (its logits pick the first new token).
  int64_t reused = 0;
  if (session) {
    const auto& held = session->tokens_;
    const size_t limit = std::min(held.size(), req.prompt.size() - 1);
    while (size_t(reused) < limit && held[size_t(reused)] == req.prompt[size_t(reused)]) ++reused;
    kv.set_length(reused);
    session->tokens_.resize(size_t(reused));
  }
  Sampler sampler(req.sampling, cfg.vocab_size);
  sampler.add_prompt(req.prompt);
  std::optional<StreamingDecoder> detok;
  if (tokenizer_) detok.emplace(*tokenizer_);
  StopMatcher stops(req.stop);
  auto emit = [&](const std::string& s) {
    if (s.empty()) return;
    if (on_text) on_text(s);
  };

  GenerationResult out;
  out.reused_prompt_tokens = reused;
  std::vector<float> hidden(size_t(cfg.hidden_size)), logits(size_t(cfg.vocab_size));
  const auto t0 = Clock::now();
  auto t_first = t0;
  const int32_t* next_ids = req.prompt.data() + reused;
  int64_t n_next = int64_t(req.prompt.size()) - reused;
  for (int64_t step = 0; step < max_new; ++step) {
    if (Status s = decoder_.forward(*ctx_, kv, next_ids, n_next, 1, hidden.data()); !s.is_ok()) {
      if (session) session->clear();  // what the cache holds is no longer known
      return s;
    }
    TERN_RETURN_IF_ERROR(decoder_.logits(*ctx_, hidden.data(), 1, logits.data()));
    const int32_t id = sampler.sample(logits.data());
    if (step == 0) t_first = Clock::now();
    const bool is_eos = std::find(req.eos_ids.begin(), req.eos_ids.end(), id) != req.eos_ids.end();
    if (is_eos && !req.ignore_eos) {
      out.finish = FinishReason::kEos;
      break;
    }
    out.tokens.push_back(id);
    sampler.add_output(id);
    if (detok) {
      const std::string piece = stops.push(detok->push(id));
      out.text += piece;
      emit(piece);
      if (stops.stopped()) {
        out.finish = FinishReason::kStop;
        break;
      }
    }
    next_ids = &out.tokens.back();
    n_next = 1;
  }
  if (detok && !stops.stopped()) {
    const std::string tail = stops.push(detok->flush());
    const std::string rest = stops.stopped() ? tail : tail + stops.flush();
    if (stops.stopped()) out.finish = FinishReason::kStop;
    out.text += rest;
    emit(rest);
  }
  if (session) {
    // The K/V computed: the prompt and every generated token fed back (all but a last one that ended
    // the reply by length or a stop string).
    std::vector<int32_t>& held = session->tokens_;
    held.assign(req.prompt.begin(), req.prompt.end());
    held.insert(held.end(), out.tokens.begin(), out.tokens.end());
    held.resize(size_t(std::min<int64_t>(kv.length(), int64_t(held.size()))));
    kv.set_length(int64_t(held.size()));
  }
  const auto t_end = Clock::now();
  out.prefill_seconds = std::chrono::duration<double>(t_first - t0).count();
  out.decode_seconds = std::chrono::duration<double>(t_end - t_first).count();
  return out;
}

}  // namespace tern
