#include "engine/engine_core.h"

#include "constrain/token_constraint.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>

#include "engine/ngram_drafter.h"

namespace tern {

namespace {
constexpr int kMaxTopLogprobs = 20;  // as OpenAI's API and vLLM's default max_logprobs
}  // namespace

double clock_seconds(EngineClock::time_point t) { return std::chrono::duration<double>(t.time_since_epoch()).count(); }

Result<std::unique_ptr<EngineCore>> EngineCore::create(ModelRunner& runner, const Tokenizer* tokenizer,
                                                       const EngineCoreConfig& config, Drafter* drafter) {
  if (config.num_blocks <= 0) return Status::error(fmt::format("the KV pool has {} blocks", config.num_blocks));
  if (config.block_size <= 0 || config.block_size > 4096)
    return Status::error(fmt::format("KV block size {} is invalid: must be in [1, 4096]", config.block_size));
  if (config.scheduler.max_step_tokens <= 0)
    return Status::error(fmt::format("max_step_tokens = {} is invalid: must be >= 1", config.scheduler.max_step_tokens));
  if (config.scheduler.max_running <= 0)
    return Status::error(fmt::format("max_running = {} is invalid: must be >= 1", config.scheduler.max_running));
  if (runner.vocab_size() <= 0) return Status::error("the model runner reports an empty vocabulary");
  TERN_ASSIGN_OR_RETURN(auto policy, make_scheduling_policy(config.policy));
  const SpeculativeConfig& sc = config.speculative;
  std::unique_ptr<NgramDrafter> ngram;
  if (!sc.enabled()) {
    if (drafter) return Status::error("a drafter was given but speculative decoding is off (method none)");
  } else {
    TERN_RETURN_IF_ERROR(sc.validate());
    if (runner.max_logits_per_sequence() < 2)
      return Status::error("speculative decoding: this model runner computes logits of one position per sequence only "
                           "(verification needs k + 1); the CPU runner supports it");
    if (sc.method == SpeculativeMethod::kDraftModel && !drafter)
      return Status::error("speculative method draft needs a draft model (--draft-model DIR)");
    if (sc.method == SpeculativeMethod::kNgram && !drafter)
      ngram = std::make_unique<NgramDrafter>(sc.prompt_lookup_min, sc.prompt_lookup_max);
  }
  auto core = std::unique_ptr<EngineCore>(new EngineCore(runner, tokenizer, config, std::move(policy)));
  core->drafter_ = ngram ? ngram.get() : drafter;
  core->owned_drafter_ = std::move(ngram);
  // Steps in flight need each step's tokens sampled before its group runs again; speculative
  // verification (drafts proposed from the previous step's tokens) keeps the one-step-at-a-time loop.
  if (runner.max_steps_in_flight() > 1 && !core->drafter_) {
    core->groups_ = runner.max_steps_in_flight();
    core->group_load_.assign(size_t(core->groups_), 0);
    core->group_busy_.assign(size_t(core->groups_), 0);
  }
  return core;
}

EngineCore::EngineCore(ModelRunner& runner, const Tokenizer* tokenizer, const EngineCoreConfig& config,
                       std::unique_ptr<SchedulingPolicy> policy)
    : runner_(runner), tokenizer_(tokenizer), config_(config), vocab_(runner.vocab_size()),
      kv_(config.num_blocks, config.block_size, config.prefix_caching),
      scheduler_(kv_, std::move(policy), config.scheduler) {}

EngineCore::~EngineCore() {
  while (!in_flight_.empty()) {
    (void)runner_.finish_forward();
    in_flight_.pop_front();
  }
}

Status EngineCore::validate(const EngineRequest& r) const {
  TERN_RETURN_IF_ERROR(r.sampling.validate());
  if (r.prompt.empty()) return Status::error("the prompt is empty (no tokens)");
  for (const double t : {r.slo_ttft_s, r.slo_tpot_s}) {
    if (!(t >= 0) || !std::isfinite(t)) return Status::error(fmt::format("latency target {} s must be >= 0 and finite", t));
  }
  if ((r.slo_ttft_s > 0 || r.slo_tpot_s > 0) && config_.policy != "slo")
    return Status::error("latency targets need the slo scheduling policy (this engine runs " + config_.policy + ")");
  for (size_t i = 0; i < r.prompt.size(); ++i) {
    if (r.prompt[i] < 0 || r.prompt[i] >= vocab_)
      return Status::error(fmt::format("prompt token {} (id {}) is outside the vocabulary of {}", i, r.prompt[i], vocab_));
  }
  if (r.max_new_tokens < 0) return Status::error(fmt::format("max_new_tokens = {} must be >= 0", r.max_new_tokens));
  if (r.top_logprobs < -1 || r.top_logprobs > kMaxTopLogprobs)
    return Status::error(fmt::format("top_logprobs = {} must be in [0, {}] (or -1 for none)", r.top_logprobs, kMaxTopLogprobs));
  if (!r.stop.empty() && !tokenizer_) return Status::error("stop strings need a tokenizer, and this engine has none");
  if (r.grammar && r.grammar->vocab_size() > vocab_)
    return Status::error(fmt::format("grammar: compiled for a vocabulary of {} tokens, but the model has {}",
                                     r.grammar->vocab_size(), vocab_));
  const int64_t prompt = int64_t(r.prompt.size());
  const int64_t context = runner_.max_context();
  if (prompt > context)
    return Status::error(fmt::format("the prompt has {} tokens but the model's context is {}", prompt, context));
  // The last generated token is never run through the model: it needs no KV slot.
  const int64_t max_new = std::min(r.max_new_tokens, context - prompt);
  const int64_t positions = std::max(prompt, prompt + max_new - 1);
  const int64_t blocks = KvBlockManager::blocks_for(positions, config_.block_size);
  if (blocks > config_.num_blocks) {
    return Status::error(fmt::format(
        "the request needs {} KV blocks ({} prompt + {} new tokens) but the whole KV pool has {} blocks of {} tokens",
        blocks, prompt, max_new, config_.num_blocks, config_.block_size));
  }
  return Status::ok();
}

Status EngineCore::add(RequestId id, EngineRequest request, OutputCallback on_output) {
  TERN_RETURN_IF_ERROR(validate(request));
  if (requests_.count(id)) return Status::error(fmt::format("request id {} is already in use", id));
  const int64_t max_new = std::min(request.max_new_tokens, runner_.max_context() - int64_t(request.prompt.size()));
  const double ttft = request.slo_ttft_s, tpot = request.slo_tpot_s;
  auto r = std::make_unique<RequestState>(id, std::move(request), std::move(on_output), tokenizer_, vocab_, max_new,
                                          next_arrival_++);
  if (ttft > 0) r->seq.ttft_deadline_s = clock_seconds(r->arrived) + ttft;
  r->seq.tpot_target_s = tpot;
  if (groups_ > 1) {
    const auto least = std::min_element(group_load_.begin(), group_load_.end());
    r->seq.group = int(least - group_load_.begin());
    ++*least;
  }
  if (max_new == 0) {
    finish_now_.push_back(id);
  } else {
    scheduler_.add(&r->seq);
  }
  requests_.emplace(id, std::move(r));
  return Status::ok();
}

void EngineCore::finish(RequestState& r, EngineOutput& out, EngineFinish why) {
  out.finish = why;
  if (why == EngineFinish::kLength || why == EngineFinish::kEos || why == EngineFinish::kStop) {
    metrics_.observe_e2e(std::chrono::duration<double>(EngineClock::now() - r.arrived).count());
  }
  scheduler_.remove(&r.seq);
  if (groups_ > 1) --group_load_[size_t(r.seq.group)];
  const RequestId id = r.seq.id;
  if (drafter_) {
    drafter_->release(id);
    draft_state_.erase(id);
    draft_probs_.erase(id);
  }
  auto node = requests_.extract(id);  // erased before the callback: it may not call back into the core
  if (node.mapped()->callback) node.mapped()->callback(id, out);
}

void EngineCore::cancel(RequestId id) {
  auto it = requests_.find(id);
  if (it == requests_.end()) return;
  EngineOutput out;
  it->second->fill_counts(&out);
  finish(*it->second, out, EngineFinish::kCancelled);
}

void EngineCore::cancel_all() {
  std::vector<RequestId> ids;
  for (const auto& [id, r] : requests_) ids.push_back(id);
  std::sort(ids.begin(), ids.end());
  for (RequestId id : ids) cancel(id);
}

void EngineCore::fail_step(const SchedulerStep& step, const std::string& error) {
  for (const ScheduledChunk& c : step.chunks) {
    auto it = requests_.find(c.seq->id);
    if (it == requests_.end()) continue;
    EngineOutput out;
    out.error = error;
    it->second->fill_counts(&out);
    finish(*it->second, out, EngineFinish::kError);
  }
}

void EngineCore::finish_zero_length() {
  for (RequestId id : std::exchange(finish_now_, {})) {
    auto it = requests_.find(id);
    if (it == requests_.end()) continue;
    EngineOutput out;
    it->second->fill_counts(&out);
    finish(*it->second, out, EngineFinish::kLength);
  }
}

void EngineCore::note_admitted(const SchedulerStep& step) {
  for (const auto& a : step.admitted) {
    RequestState& r = *requests_.at(a.seq->id);
    if (r.started) continue;  // a preempted request coming back: its prompt is counted once
    r.started = true;
    r.cached_prompt_tokens = a.cached_tokens;
    metrics_.add_prompt(r.seq.prompt_len, a.cached_tokens);
  }
  metrics_.set_preempted_total(scheduler_.preemptions_total());
  last_step_tokens_ = step.num_tokens;
}

int64_t EngineCore::build_batch(const SchedulerStep& step, int64_t* prompt_tokens) {
  // The ragged batch: each chunk's tokens, positions pos0.., and its block table.
  batch_.token_ids.clear();
  batch_.seqs.clear();
  int64_t n_logits = 0;
  for (const ScheduledChunk& c : step.chunks) {
    const auto& tokens = c.seq->tokens;
    batch_.token_ids.insert(batch_.token_ids.end(), tokens.begin() + c.pos0, tokens.begin() + c.pos0 + c.n_tokens);
    const auto& table = kv_.table(c.seq->id);
    // A decode with k drafts wants k + 1 rows (its chunk always reaches the last draft).
    const int64_t rows = c.want_logits ? 1 + c.seq->num_draft : 0;
    batch_.seqs.push_back({c.pos0, c.n_tokens, table.data(), int64_t(table.size()), c.want_logits, std::max<int64_t>(rows, 1)});
    n_logits += rows;
    if (!c.seq->decoding()) *prompt_tokens += c.n_tokens;
  }
  return n_logits;
}

void EngineCore::on_request_logits(RequestState& r, float* logits, int64_t* generated) {
  const bool first = !r.has_first_token;
  const auto prev = r.last_token;
  EngineOutput out;
  const EngineFinish fin = r.seq.num_draft > 0 ? verify(r, logits, &out) : r.on_logits(logits, &out);
  if (first) {
    r.first_token = r.last_token;
    metrics_.observe_ttft(std::chrono::duration<double>(r.first_token - r.arrived).count());
  } else {
    metrics_.observe_itl(std::chrono::duration<double>(r.last_token - prev).count());
  }
  *generated += int64_t(out.tokens.size());
  if (fin != EngineFinish::kNone) {
    finish(r, out, fin);
  } else if (r.callback) {
    r.callback(r.seq.id, out);
  }
}

void EngineCore::step() {
  if (groups_ > 1) return step_pipelined();
  const auto step_start = EngineClock::now();
  finish_zero_length();

  if (drafter_) propose_drafts();
  const SchedulerStep step = scheduler_.schedule(clock_seconds(EngineClock::now()));
  if (drafter_) drop_unscheduled_drafts();
  note_admitted(step);
  if (step.empty()) return;

  int64_t prompt_tokens = 0;
  const int64_t n_logits = build_batch(step, &prompt_tokens);
  logits_.resize(size_t(n_logits * vocab_));
  const Status st = runner_.forward(batch_, logits_.data());
  if (!st.is_ok()) {
    fail_step(step, st.message());
    return;
  }
  scheduler_.complete(step);

  int64_t row = 0, generated = 0;
  for (const ScheduledChunk& c : step.chunks) {
    if (!c.want_logits) continue;
    float* logits = logits_.data() + row * vocab_;
    row += 1 + c.seq->num_draft;
    auto it = requests_.find(c.seq->id);
    if (it == requests_.end()) continue;
    on_request_logits(*it->second, logits, &generated);
  }
  const auto step_end = EngineClock::now();
  metrics_.add_step(step_end, prompt_tokens, generated);
  // The whole step (scheduling, forward, sampling, emitting): what a stream waits per token.
  scheduler_.observe_step(step.num_tokens, std::chrono::duration<double>(step_end - step_start).count());
}

void EngineCore::step_pipelined() {
  finish_zero_length();
  // Start every idle group's next step (round robin), up to the runner's depth, then sample the
  // oldest step in the pipeline: the stages compute the others' meanwhile.
  const int depth = runner_.max_steps_in_flight();
  for (int tries = 0; tries < groups_ && int(in_flight_.size()) < depth; ++tries) {
    const int g = next_group_;
    next_group_ = (next_group_ + 1) % groups_;
    if (!group_busy_[size_t(g)]) start_group(g);
  }
  if (!in_flight_.empty()) finish_oldest();
}

bool EngineCore::start_group(int group) {
  const auto start = EngineClock::now();
  const SchedulerStep step = scheduler_.schedule_group(clock_seconds(start), group);
  note_admitted(step);
  if (step.empty()) return false;
  InFlight& f = in_flight_.emplace_back();
  f.group = group;
  f.start = start;
  const int64_t n_logits = build_batch(step, &f.prompt_tokens);
  if (!spare_logits_.empty()) {
    f.logits = std::move(spare_logits_.back());
    spare_logits_.pop_back();
  }
  f.logits.resize(size_t(n_logits * vocab_));
  const Status st = runner_.start_forward(batch_, f.logits.data());
  if (!st.is_ok()) {
    in_flight_.pop_back();
    fail_step(step, st.message());
    return false;
  }
  for (const ScheduledChunk& c : step.chunks) {
    f.ids.push_back(c.seq->id);
    f.arrivals.push_back(c.seq->arrival);
  }
  f.step = step;
  group_busy_[size_t(group)] = 1;
  return true;
}

void EngineCore::finish_oldest() {
  InFlight f = std::move(in_flight_.front());
  in_flight_.pop_front();
  group_busy_[size_t(f.group)] = 0;
  const Status st = runner_.finish_forward();
  // The chunks whose requests are still here: one cancelled while in flight is finished already
  // (its blocks released: the stages write them for this step before any later step's, in order).
  SchedulerStep alive;
  alive.num_tokens = f.step.num_tokens;
  std::vector<int64_t> first_row;
  int64_t row = 0;
  for (size_t i = 0; i < f.step.chunks.size(); ++i) {
    const ScheduledChunk& c = f.step.chunks[i];
    auto it = requests_.find(f.ids[i]);
    if (it != requests_.end() && it->second->seq.arrival == f.arrivals[i]) {
      alive.chunks.push_back(c);
      first_row.push_back(row);
    }
    row += c.want_logits ? 1 : 0;  // no drafts under steps in flight
  }
  if (!st.is_ok()) {
    fail_step(alive, st.message());
  } else {
    scheduler_.complete(alive);
    int64_t generated = 0;
    for (size_t i = 0; i < alive.chunks.size(); ++i) {
      const ScheduledChunk& c = alive.chunks[i];
      if (!c.want_logits) continue;
      auto it = requests_.find(c.seq->id);
      if (it == requests_.end()) continue;
      on_request_logits(*it->second, f.logits.data() + first_row[i] * vocab_, &generated);
    }
    const auto end = EngineClock::now();
    metrics_.add_step(end, f.prompt_tokens, generated);
    scheduler_.observe_step(f.step.num_tokens, std::chrono::duration<double>(end - f.start).count());
  }
  spare_logits_.push_back(std::move(f.logits));
}

std::optional<SloQueue> EngineCore::slo_queue() const {
  const auto* slo = dynamic_cast<const SloPolicy*>(&scheduler_.policy());
  if (!slo) return std::nullopt;
  return slo_queue_of(*slo, scheduler_);
}

EngineMetrics EngineCore::metrics() const {
  EngineMetrics m = metrics_.snapshot(EngineClock::now());
  m.running = int64_t(scheduler_.running().size());
  m.waiting = int64_t(scheduler_.waiting().size() + finish_now_.size());
  m.kv_blocks_total = kv_.num_blocks();
  m.kv_blocks_free = kv_.num_available();
  m.kv_blocks_used = kv_.num_used();
  m.spec_draft_tokens = spec_drafted_;
  m.spec_accepted_tokens = spec_accepted_;
  m.spec_verify_steps = spec_steps_;
  m.spec_emitted_tokens = spec_emitted_;
  return m;
}

}  // namespace tern
