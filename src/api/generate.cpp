// POST /v1/completions and /v1/chat/completions: validate, tokenize (chat template for chat), check the
// context, admit under the queue bound, add one engine request per choice, then answer as one JSON body or
// as an SSE stream. No thread waits: the engine's events ring the request's Job, which runs on a worker,
// takes what arrived and writes it. A whole-body answer is sent once the result is known, so its status
// is the true one (200, or 500 / 503 for a failure or a shutdown cancel). A client that goes away cancels
// its engine requests at once.
#include <cmath>
#include <ctime>
#include <tuple>

#include "api/anthropic_response.h"
#include "api/chat_output.h"
#include "api/constraint_request.h"
#include "api/openai_response.h"
#include "api/server_impl.h"
#include "text/chat_template/chat_template.h"
#include "text/tokenizer/tokenizer.h"

namespace tern::api {

using json = nlohmann::ordered_json;

namespace {

// Token ids per prompt, their text (for echo), and the completion budget of each.
struct Prepared {
  std::vector<std::vector<int32_t>> prompts;
  std::vector<std::string> texts;
  std::vector<int64_t> max_new;
  std::string chat_prompt;  // chat: the rendered template
  std::shared_ptr<const Grammar> grammar;  // the request's constraint (null: none)
};

// Everything one answer needs after the handler returned; alive while the engine's events can come.
struct Job : std::enable_shared_from_this<Job> {
  ApiServer::Impl* srv = nullptr;
  XPtr x;
  ResponseMeta meta;
  std::shared_ptr<RequestGroup> group;
  std::vector<ChoiceState> choices;
  std::vector<bool> started;      // chat: the role chunk went out
  std::vector<std::string> echo;  // completions echo: prompt text per choice
  std::unique_ptr<ChatParserOptions> parse_opts;            // chat replies split into reasoning / content / calls
  std::vector<std::unique_ptr<ChatOutputParser>> parsers;   // streaming: one per choice
  std::vector<int> calls_sent;                              // streaming: calls sent per choice
  std::vector<std::pair<int, EngineRequest>> deferred;      // n > 1: siblings waiting for their first choice
  Dialect dialect = Dialect::kOpenAi;
  std::unique_ptr<AnthropicStream> anthropic;               // Anthropic streaming: its block state
  int n = 1;
  bool stream = false, include_usage = false;
  std::atomic<bool> scheduled{false};    // a pump is queued or running
  std::atomic<bool> client_gone{false};
  bool finished = false;                 // pump only

  // The engine thread (or the handler) rings; one pump at a time runs on a worker.
  void notify() {
    if (!scheduled.exchange(true)) x->post([self = shared_from_this()] { self->pump(); });
  }

  void pump() {
    for (;;) {
      std::string out;
      RequestGroup::Event ev;
      while (!finished && group->try_pop(ev)) {
        if (ev.index % n == 0 && !deferred.empty()) start_siblings(ev);
        choices[size_t(ev.index)].add(ev.out);
        if (stream) stream_event(ev, out);
      }
      if (!out.empty()) x->write(std::move(out));
      if (!finished && group->all_finished() && !group->has_events()) complete();
      scheduled.store(false);
      // An event pushed after the last pop rang while the flag was still set: take it over.
      if (finished || !group->has_events() || scheduled.exchange(true)) return;
    }
  }

  // The first event of choice `first.index` (a prompt's first choice): its prompt is in the prefix cache now,
  // so its n - 1 siblings go to the engine. If it already failed or the client left, they end the same way.
  void start_siblings(const RequestGroup::Event& first) {
    const bool dead = client_gone || first.out.finish == EngineFinish::kCancelled ||
                      first.out.finish == EngineFinish::kError;
    for (auto it = deferred.begin(); it != deferred.end();) {
      const int c = it->first;
      if (c / n != first.index / n) {
        ++it;
        continue;
      }
      OutputCallback cb = group->callback(c, group);
      if (dead) {
        EngineOutput end;
        end.finish = first.out.finish == EngineFinish::kError ? EngineFinish::kError : EngineFinish::kCancelled;
        end.error = first.out.error;
        cb(0, end);
      } else if (auto id = srv->engine.add(std::move(it->second), cb); id.is_ok()) {
        group->set_id(c, id.value());
      } else {
        EngineOutput end;
        end.finish = EngineFinish::kError;
        end.error = id.status().message();
        cb(0, end);
      }
      it = deferred.erase(it);
    }
  }

  // The event's text split by choice i's chat parser (all of it at the finish).
  ChatDelta parsed_delta(size_t i, const EngineOutput& ev) {
    ChatOutputParser& p = *parsers[i];
    ChatDelta d = p.feed(ev.text);
    if (ev.finish != EngineFinish::kNone) {
      ChatDelta rest = p.finish();
      d.reasoning += rest.reasoning;
      d.content += rest.content;
      d.calls.insert(d.calls.end(), rest.calls.begin(), rest.calls.end());
    }
    return d;
  }

  void stream_event(const RequestGroup::Event& ev, std::string& out) {
    const auto f = ev.out.finish;
    if (f == EngineFinish::kCancelled || f == EngineFinish::kError) return;
    const size_t i = size_t(ev.index);
    const Tokenizer& tok = srv->tok;
    if (anthropic) {
      // One choice; the closing events are complete()'s, once the usage is final.
      anthropic->start(choices[i], out);
      ChatDelta d;
      if (parse_opts) {
        d = parsed_delta(i, ev.out);
      } else {
        d.content = ev.out.text;
      }
      return anthropic->delta(d, out);
    }
    if (meta.endpoint == Endpoint::kChat && !started[i]) {
      // Chat's first chunk carries the role with empty content, as OpenAI sends it.
      out += sse_event(stream_chunk(meta, tok, ev.index, EngineOutput{}, "", true, include_usage));
      started[i] = true;
    }
    if (parse_opts) {
      const ChatDelta d = parsed_delta(i, ev.out);
      return stream_parsed_event(meta, tok, ev.index, ev.out, d, calls_sent[i], int(parsers[i]->calls().size()), include_usage,
                                 out);
    }
    const bool has_logprobs = meta.want_logprobs && !ev.out.tokens.empty();
    if (ev.out.text.empty() && f == EngineFinish::kNone && !has_logprobs) return;
    std::string text = ev.out.text;
    if (!echo[i].empty() && choices[i].tokens.size() <= ev.out.tokens.size()) text = echo[i] + text;  // the prompt leads
    out += sse_event(stream_chunk(meta, tok, ev.index, ev.out, text, false, include_usage));
  }

  bool failed(std::string& message) const {
    for (const auto& c : choices) {
      if (c.finish == EngineFinish::kError) {
        message = c.error.empty() ? "generation failed" : c.error;
        return true;
      }
      if (c.finish == EngineFinish::kCancelled) {
        message = group->cancelled_by_shutdown ? "the server is shutting down" : "the request was cancelled";
        return true;
      }
    }
    return false;
  }

  void complete() {
    finished = true;
    group->set_notifier(nullptr);  // the group no longer holds this job
    std::string message;
    const bool bad = failed(message);
    const bool shutdown = group->cancelled_by_shutdown;
    const ApiError failure = api_error(shutdown ? 503 : 500, message, "server_error", shutdown ? "shutting_down" : "");
    if (dialect == Dialect::kAnthropic) {
      complete_anthropic(bad, failure);
    } else if (stream) {
      if (bad) {
        x->write(sse_event({{"error", {{"message", message}, {"type", "server_error"}, {"param", nullptr},
                                       {"code", shutdown ? json("shutting_down") : json(nullptr)}}}}));
      } else if (include_usage) {
        x->write(sse_event(usage_chunk(meta, usage_json(choices, n))));
      }
      x->write(kSseDone);
      x->end();
    } else if (bad) {
      send_error(x, failure);
    } else {
      parse_choices();
      x->respond(json_response(200, dump_json(full_response(meta, srv->tok, choices, echo, n))));
    }
    (client_gone ? srv->counters.client_disconnects : srv->counters.completed)++;
    srv->untrack(group);
    srv->handler_done();
  }

  // Whole (non-streamed) chat replies split into reasoning / content / tool calls.
  void parse_choices() {
    if (!parse_opts) return;
    for (size_t i = 0; i < choices.size(); ++i) {
      ChatParserOptions o = *parse_opts;
      o.id_seed += uint64_t(i) * 1000003u;  // distinct ids per choice, as the stream's
      parse_choice(o, choices[i]);
    }
  }

  // The Anthropic answer of a finished request (one choice): the stream's closing events, or the message.
  void complete_anthropic(bool bad, const ApiError& failure) {
    if (stream) {
      std::string out;
      if (bad) {
        anthropic->error(failure, out);
      } else {
        anthropic->finish(choices[0], out);
      }
      x->write(std::move(out));
      x->end();
    } else if (bad) {
      x->respond(anthropic_error_response(failure));
    } else {
      parse_choices();
      x->respond(json_response(200, dump_json(anthropic_message(meta.id, meta.model, choices[0]))));
    }
  }
};

}  // namespace

std::variant<std::vector<int32_t>, ApiError> ApiServer::Impl::render_chat(const json& messages,
                                                                         bool add_generation_prompt, const json* tools,
                                                                         std::string* text_out) const {
  if (!chat) return api_error(400, "this model has no chat template: use /v1/completions");
  json ctx = chat->special_tokens;
  ctx["messages"] = messages;
  ctx["add_generation_prompt"] = add_generation_prompt;
  // As transformers' apply_chat_template: the tools' JSON schemas in OpenAI's {"type": "function", ...} form.
  if (tools && !tools->empty()) ctx["tools"] = *tools;
  auto text = chat->chat_template.render(ctx);
  if (!text.is_ok()) return bad_param("messages", "the chat template rejected the messages: " + text.status().message());
  if (text_out) *text_out = text.value();
  return tok.encode(text.value(), /*add_special_tokens=*/false);
}

// Prompts as token ids and their budgets, or the 4xx that says what does not fit.
static std::variant<Prepared, ApiError> prepare(ApiServer::Impl& s, Endpoint endpoint, const OpenAiRequest& r) {
  if (!s.model_known(r.model)) {
    ApiError e = api_error(404, "The model '" + r.model + "' does not exist", "invalid_request_error", "model_not_found");
    e.param = "model";
    return e;
  }

  // Prompts as token ids; echo text per prompt.
  const bool chat_ep = endpoint == Endpoint::kChat;
  const char* prompt_param = chat_ep ? "messages" : "prompt";
  Prepared out;
  auto& prompts = out.prompts;
  auto& prompt_texts = out.texts;
  for (const auto& [id, bias] : r.sampling.logit_bias) {
    if (id >= s.tok.vocab_size()) {
      return bad_param("logit_bias", "'logit_bias' names token " + std::to_string(id) + ", outside the vocabulary (" +
                                         std::to_string(s.tok.vocab_size()) + " tokens)");
    }
  }
  if (chat_ep && r.tools.choice == ToolChoice::kAuto &&
      (s.chat_format.tool_calls == ToolCallFormat::kNone || !s.chat_format.template_renders_tools)) {
    // The model would never see the tools, or tern could not read its calls: say so rather than answer in text.
    return bad_param("tools", "this model's chat template has no tool-call format tern recognises (Hermes / "
                                    "Qwen <tool_call>, Llama 3.1 JSON, Mistral [TOOL_CALLS]), so tool_choice \"auto\" "
                                    "cannot work; use tool_choice \"required\" or a named function");
  }
  if (chat_ep) {
    const json* tools = r.tools.choice == ToolChoice::kNone ? nullptr : &r.tools.tools;
    auto ids = s.render_chat(r.messages, true, tools, &out.chat_prompt);
    if (auto* e = std::get_if<ApiError>(&ids)) return *e;
    prompts.push_back(std::move(std::get<std::vector<int32_t>>(ids)));
    prompt_texts.emplace_back();
  } else {
    for (const auto& p : r.prompts) {
      if (const auto* text = std::get_if<std::string>(&p)) {
        prompts.push_back(s.tok.encode(*text, true));
        prompt_texts.push_back(*text);
      } else {
        const auto& ids = std::get<std::vector<int32_t>>(p);
        for (int32_t id : ids) {
          if (id >= s.tok.vocab_size()) {
            return bad_param("prompt", "token id " + std::to_string(id) + " is outside the vocabulary (" +
                                                           std::to_string(s.tok.vocab_size()) + " tokens)");
          }
        }
        prompts.push_back(ids);
        prompt_texts.push_back(r.echo ? s.tok.decode(ids) : std::string());
      }
    }
  }

  const bool forced = r.tools.choice == ToolChoice::kRequired || r.tools.choice == ToolChoice::kNamed;
  // auto in the Hermes, Llama 3.1 or Mistral format: text stays free, a call once begun follows its tool's schema.
  const bool auto_calls = chat_ep && r.tools.choice == ToolChoice::kAuto && auto_constrained(s.chat_format.tool_calls);
  if (r.constraint.kind != ConstraintSpec::Kind::kNone || forced || auto_calls) {
    auto cache = s.grammar_cache();
    if (!cache.is_ok()) {
      return bad_param(forced || auto_calls ? "tool_choice" : r.constraint.param, "constrained decoding is unavailable: " +
                                                                       cache.status().message());
    }
    auto g = compile_request_grammar(*cache.value(), r, auto_calls ? s.chat_format : ChatFormat{});
    if (auto* e = std::get_if<ApiError>(&g)) return *e;
    out.grammar = std::get<std::shared_ptr<const Grammar>>(g);
  }

  // Context: prompt + completion must fit; the message names both lengths.
  auto& max_new = out.max_new;
  max_new.resize(prompts.size());
  for (size_t i = 0; i < prompts.size(); ++i) {
    const int64_t plen = int64_t(prompts[i].size());
    if (plen == 0) return bad_param(prompt_param, "the prompt is empty");
    if (plen >= s.opt.max_context) {
      ApiError e = bad_param(prompt_param, "This model's maximum context length is " + std::to_string(s.opt.max_context) +
                                               " tokens, but the prompt has " + std::to_string(plen) + " tokens");
      e.code = "context_length_exceeded";
      return e;
    }
    const int64_t room = s.opt.max_context - plen;
    if (r.max_tokens && *r.max_tokens > room) {
      ApiError e = bad_param("max_tokens",
                             "This model's maximum context length is " + std::to_string(s.opt.max_context) +
                                 " tokens, but " + std::to_string(plen + *r.max_tokens) + " were requested (" +
                                 std::to_string(plen) + " in the prompt, " + std::to_string(*r.max_tokens) +
                                 " for the completion)");
      e.code = "context_length_exceeded";
      return e;
    }
    max_new[i] = r.max_tokens ? *r.max_tokens : (chat_ep ? room : std::min<int64_t>(16, room));
  }

  return out;
}

void ApiServer::Impl::handle_generate(Endpoint endpoint, const HttpRequest& req, const XPtr& x) {
  if (draining) return send_shutting_down(x, Dialect::kOpenAi);
  auto parsed = parse_openai_request(endpoint, req.body);
  if (auto* e = std::get_if<ApiError>(&parsed)) return send_error(x, *e);
  generate(std::get<OpenAiRequest>(parsed), Dialect::kOpenAi, x);
}

void ApiServer::Impl::send_shutting_down(const XPtr& x, Dialect d) {
  send_error_in(x, d, api_error(503, "the server is shutting down", "server_error", "shutting_down"));
}

void ApiServer::Impl::generate(OpenAiRequest& r, Dialect dialect, const XPtr& x) {
  const Endpoint endpoint = r.endpoint;
  // Counted until the answer is complete (by the job once it exists).
  active_handlers++;
  struct Count {
    ApiServer::Impl* s;
    ~Count() {
      if (s) s->handler_done();
    }
  } count{this};
  if (draining) return send_shutting_down(x, dialect);
  auto fail = [&](const ApiError& e) { send_error_in(x, dialect, e); };

  log_ignored(r.ignored_fields);
  auto prepared = prepare(*this, endpoint, r);
  if (auto* e = std::get_if<ApiError>(&prepared)) return fail(*e);
  const Prepared& p = std::get<Prepared>(prepared);

  auto busy = [&](const std::string& message, const std::string& code, double retry_after_s) {
    const ApiError e = api_error(429, message, "rate_limit_error", code);
    HttpResponse r = dialect == Dialect::kAnthropic ? anthropic_error_response(e) : error_response(e);
    r.headers.push_back({"Retry-After", std::to_string(int64_t(std::ceil(retry_after_s)))});
    x->respond(std::move(r));
  };

  // Latency targets: the server's, tightened by the request's; refused now if the queue ahead makes the
  // TTFT target unreachable (better than accepting and missing it).
  double ttft_s = opt.slo_ttft_s, tpot_s = opt.slo_tpot_s;
  for (auto [given, target, name] : {std::tuple{r.slo_ttft_ms, &ttft_s, "slo_ttft_ms"}, {r.slo_tpot_ms, &tpot_s, "slo_tpot_ms"}}) {
    if (!given || *given <= 0) continue;
    if (!opt.slo_scheduling) {
      return fail(bad_param(name, std::string("'") + name + "' needs a server started with --scheduling-policy slo "
                                                          "(or --slo-ttft-ms / --slo-tpot-ms)"));
    }
    *target = *target > 0 ? std::min(*target, *given / 1e3) : *given / 1e3;
  }
  if (ttft_s > 0) {
    EngineRequest probe;
    for (const auto& prompt : p.prompts) probe.prompt.insert(probe.prompt.end(), prompt.begin(), prompt.end());
    probe.slo_ttft_s = ttft_s;
    if (auto wait = engine.slo_retry_after(probe)) {
      counters.rejected_slo++;
      return busy("the time-to-first-token target (" + std::to_string(int64_t(ttft_s * 1e3)) +
                      " ms) cannot be met with the requests queued now: retry later",
                  "slo_unreachable", *wait);
    }
  }

  // Admission: a bounded number of engine requests in flight.
  const int n_choices = int(p.prompts.size()) * r.n;
  int64_t cur = in_flight->load();
  do {
    if (cur + n_choices > opt.max_queue) {
      counters.rejected_queue_full++;
      return busy("the server is at capacity (" + std::to_string(opt.max_queue) + " requests in flight): retry later",
                  "queue_full", 1);
    }
  } while (!in_flight->compare_exchange_weak(cur, cur + n_choices));

  const bool chat_ep = endpoint == Endpoint::kChat;
  auto job = std::make_shared<Job>();
  job->srv = this;
  job->x = x;
  job->group = std::make_shared<RequestGroup>(n_choices, in_flight);
  job->choices.resize(size_t(n_choices));
  job->started.assign(size_t(n_choices), false);
  job->n = r.n;
  job->stream = r.stream;
  job->include_usage = r.include_usage;
  job->meta.endpoint = endpoint;
  job->meta.id = std::string(dialect == Dialect::kAnthropic ? "msg_" : chat_ep ? "chatcmpl-" : "cmpl-") +
                 std::to_string(std::time(nullptr)) + "-" + std::to_string(next_response_id++);
  job->dialect = dialect;
  if (dialect == Dialect::kAnthropic && r.stream) job->anthropic = std::make_unique<AnthropicStream>(job->meta.id, r.model);
  job->meta.created = int64_t(std::time(nullptr));
  job->meta.model = r.model;
  job->meta.want_logprobs = r.top_logprobs >= 0;
  for (int c = 0; c < n_choices; ++c) job->echo.push_back(r.echo ? p.texts[size_t(c / r.n)] : std::string());
  if (chat_ep) {
    job->parse_opts = chat_parser_options(chat_format, r, p.chat_prompt, next_response_id.load() * 0x9E3779B97F4A7C15ull ^
                                                                             uint64_t(job->meta.created));
    if (job->parse_opts && r.stream) {
      for (int c = 0; c < n_choices; ++c) {
        ChatParserOptions o = *job->parse_opts;
        o.id_seed += uint64_t(c) * 1000003u;  // distinct ids per choice
        job->parsers.push_back(std::make_unique<ChatOutputParser>(std::move(o)));
      }
      job->calls_sent.assign(size_t(n_choices), 0);
    }
  }
  track(job->group);

  // Events that arrive before the notifier is set wait in the group; notify() below takes them.
  for (int c = 0; c < n_choices; ++c) {
    EngineRequest er;
    er.prompt = p.prompts[size_t(c / r.n)];
    er.sampling = r.sampling;
    if (er.sampling.seed && r.n > 1) *er.sampling.seed += uint64_t(c % r.n);  // n seeded choices differ
    er.max_new_tokens = p.max_new[size_t(c / r.n)];
    er.eos_ids = opt.eos_ids;
    er.ignore_eos = r.ignore_eos;
    er.stop = r.stop;
    er.top_logprobs = r.top_logprobs;
    er.grammar = p.grammar;
    er.slo_ttft_s = ttft_s;
    er.slo_tpot_s = tpot_s;
    if (c % r.n != 0) {
      // n > 1: the siblings start once the first choice of their prompt has prefilled (its first event), so
      // that they find the prompt's KV blocks in the prefix cache instead of computing them again.
      job->deferred.emplace_back(c, std::move(er));
      continue;
    }
    auto id = engine.add(std::move(er), job->group->callback(c, job->group));
    if (!id.is_ok()) {
      // This one, the ones never added and the deferred siblings.
      in_flight->fetch_sub(n_choices - c + int64_t(job->deferred.size()));
      job->deferred.clear();
      job->group->cancel_all(engine);
      untrack(job->group);
      return fail(bad_param(chat_ep ? "messages" : "prompt", id.status().message()));
    }
    job->group->set_id(c, id.value());
  }

  if (r.stream) {
    // Before any pump can write (the pump is posted after this call).
    x->start_stream(200, "text/event-stream", {{"Cache-Control", "no-cache"}, {"X-Accel-Buffering", "no"}});
  }
  x->on_abort([weak = std::weak_ptr<Job>(job), this] {
    if (auto j = weak.lock()) {
      j->client_gone = true;
      j->group->cancel_all(engine);  // the engine's last events still finish the job
    }
  });
  count.s = nullptr;  // the job ends the count
  job->group->set_notifier([job] { job->notify(); });
  job->notify();
}

}  // namespace tern::api
