// POST /v1/completions and /v1/chat/completions: validate, tokenize (chat template for chat), check the
// context, admit under the queue bound, add one engine request per choice, then answer as one JSON body
// or as an SSE stream. A client that goes away (a failed write) cancels its engine requests at once.
#include <chrono>
#include <ctime>

#include "api/openai_response.h"
#include "api/server_impl.h"
#include "model/chat_template/chat_template.h"
#include "model/tokenizer/tokenizer.h"

namespace tern::api {

using json = nlohmann::json;
using Clock = std::chrono::steady_clock;

namespace {

constexpr auto kPoll = std::chrono::milliseconds(50);
constexpr auto kDirectWait = std::chrono::seconds(1);  // non-streaming: answer in one piece if done by then
constexpr auto kHeartbeat = std::chrono::seconds(1);   // idle writes that notice a client gone

// Everything one response needs after the handler returns (the stream outlives it).
struct Job {
  ResponseMeta meta;
  std::shared_ptr<RequestGroup> group;
  std::vector<ChoiceState> choices;
  std::vector<bool> started;         // chat: the role chunk went out
  std::vector<std::string> echo;     // completions echo: prompt text per choice
  int n = 1;
  bool include_usage = false;
  Clock::time_point last_write = Clock::now();
};

// Pops what is queued (waiting at most `wait` for the first event) into the job's choices; calls
// on_event for each. Returns true when every choice has finished.
template <typename F>
bool drain_events(Job& job, Clock::duration wait, F&& on_event) {
  RequestGroup::Event ev;
  auto timeout = std::chrono::duration_cast<std::chrono::milliseconds>(wait);
  while (job.group->pop(ev, timeout)) {
    job.choices[size_t(ev.index)].add(ev.out);
    on_event(ev);
    timeout = std::chrono::milliseconds(0);
  }
  return job.group->all_finished() && !job.group->pop(ev, std::chrono::milliseconds(0));
}

bool any_error(const Job& job, std::string& message) {
  for (const auto& c : job.choices) {
    if (c.finish == EngineFinish::kError) {
      message = c.error.empty() ? "generation failed" : c.error;
      return true;
    }
    if (c.finish == EngineFinish::kCancelled) {
      message = job.group->cancelled_by_shutdown ? "the server is shutting down" : "the request was cancelled";
      return true;
    }
  }
  return false;
}

}  // namespace

std::variant<std::vector<int32_t>, ApiError> ApiServer::Impl::render_chat(const json& messages,
                                                                         bool add_generation_prompt) const {
  if (!chat) return api_error(400, "this model has no chat template: use /v1/completions");
  json ctx = chat->special_tokens;
  ctx["messages"] = messages;
  ctx["add_generation_prompt"] = add_generation_prompt;
  auto text = chat->chat_template.render(ctx);
  if (!text.is_ok()) return bad_param("messages", "the chat template rejected the messages: " + text.status().message());
  return tok.encode(text.value(), /*add_special_tokens=*/false);
}

void ApiServer::Impl::handle_generate(Endpoint endpoint, const httplib::Request& req, httplib::Response& res) {
  // Counted until the answer is fully written (the stream releaser, or the end of this function).
  active_handlers++;
  struct HandlerGuard {
    std::atomic<int64_t>* n;
    ~HandlerGuard() {
      if (n) n->fetch_sub(1);
    }
  } guard{&active_handlers};
  if (draining) return send_error(res, api_error(503, "the server is shutting down", "server_error", "shutting_down"));

  auto parsed = parse_openai_request(endpoint, req.body);
  if (auto* e = std::get_if<ApiError>(&parsed)) return send_error(res, *e);
  OpenAiRequest& r = std::get<OpenAiRequest>(parsed);
  if (!model_known(r.model)) {
    ApiError e = api_error(404, "The model '" + r.model + "' does not exist", "invalid_request_error", "model_not_found");
    e.param = "model";
    return send_error(res, e);
  }

  // Prompts as token ids; echo text per prompt.
  const bool chat_ep = endpoint == Endpoint::kChat;
  const char* prompt_param = chat_ep ? "messages" : "prompt";
  std::vector<std::vector<int32_t>> prompts;
  std::vector<std::string> prompt_texts;
  if (chat_ep) {
    auto ids = render_chat(r.messages, true);
    if (auto* e = std::get_if<ApiError>(&ids)) return send_error(res, *e);
    prompts.push_back(std::move(std::get<std::vector<int32_t>>(ids)));
    prompt_texts.emplace_back();
  } else {
    for (const auto& p : r.prompts) {
      if (const auto* text = std::get_if<std::string>(&p)) {
        prompts.push_back(tok.encode(*text, true));
        prompt_texts.push_back(*text);
      } else {
        const auto& ids = std::get<std::vector<int32_t>>(p);
        for (int32_t id : ids) {
          if (id >= tok.vocab_size()) {
            return send_error(res, bad_param("prompt", "token id " + std::to_string(id) + " is outside the vocabulary (" +
                                                           std::to_string(tok.vocab_size()) + " tokens)"));
          }
        }
        prompts.push_back(ids);
        prompt_texts.push_back(r.echo ? tok.decode(ids) : std::string());
      }
    }
  }

  // Context: prompt + completion must fit; the message names both lengths.
  std::vector<int64_t> max_new(prompts.size());
  for (size_t i = 0; i < prompts.size(); ++i) {
    const int64_t plen = int64_t(prompts[i].size());
    if (plen == 0) return send_error(res, bad_param(prompt_param, "the prompt is empty"));
    if (plen >= opt.max_context) {
      ApiError e = bad_param(prompt_param, "This model's maximum context length is " + std::to_string(opt.max_context) +
                                               " tokens, but the prompt has " + std::to_string(plen) + " tokens");
      e.code = "context_length_exceeded";
      return send_error(res, e);
    }
    const int64_t room = opt.max_context - plen;
    if (r.max_tokens && *r.max_tokens > room) {
      ApiError e = bad_param("max_tokens",
                             "This model's maximum context length is " + std::to_string(opt.max_context) +
                                 " tokens, but " + std::to_string(plen + *r.max_tokens) + " were requested (" +
                                 std::to_string(plen) + " in the prompt, " + std::to_string(*r.max_tokens) +
                                 " for the completion)");
      e.code = "context_length_exceeded";
      return send_error(res, e);
    }
    max_new[i] = r.max_tokens ? *r.max_tokens : (chat_ep ? room : std::min<int64_t>(16, room));
  }

  // Admission: a bounded number of engine requests in flight.
  const int n_choices = int(prompts.size()) * r.n;
  int64_t cur = in_flight->load();
  do {
    if (cur + n_choices > opt.max_queue) {
      counters.rejected_queue_full++;
      ApiError e = api_error(429, "the server is at capacity (" + std::to_string(opt.max_queue) +
                                      " requests in flight): retry later", "rate_limit_error", "queue_full");
      res.set_header("Retry-After", "1");
      return send_error(res, e);
    }
  } while (!in_flight->compare_exchange_weak(cur, cur + n_choices));

  auto job = std::make_shared<Job>();
  job->group = std::make_shared<RequestGroup>(n_choices, in_flight);
  job->choices.resize(size_t(n_choices));
  job->started.assign(size_t(n_choices), false);
  job->n = r.n;
  job->include_usage = r.include_usage;
  job->meta.endpoint = endpoint;
  job->meta.id = std::string(chat_ep ? "chatcmpl-" : "cmpl-") + std::to_string(std::time(nullptr)) + "-" +
                 std::to_string(next_response_id++);
  job->meta.created = int64_t(std::time(nullptr));
  job->meta.model = r.model;
  job->meta.want_logprobs = r.top_logprobs >= 0;
  for (int c = 0; c < n_choices; ++c) {
    job->echo.push_back(r.echo ? prompt_texts[size_t(c / r.n)] : std::string());
  }
  track(job->group);

  for (int c = 0; c < n_choices; ++c) {
    EngineRequest er;
    er.prompt = prompts[size_t(c / r.n)];
    er.sampling = r.sampling;
    if (er.sampling.seed && r.n > 1) *er.sampling.seed += uint64_t(c % r.n);  // n seeded choices differ
    er.max_new_tokens = max_new[size_t(c / r.n)];
    er.eos_ids = opt.eos_ids;
    er.ignore_eos = r.ignore_eos;
    er.stop = r.stop;
    er.top_logprobs = r.top_logprobs;
    auto id = engine.add(std::move(er), job->group->callback(c, job->group));
    if (!id.is_ok()) {
      in_flight->fetch_sub(n_choices - c);  // this one and the ones never added
      job->group->cancel_all(engine);
      untrack(job->group);
      return send_error(res, bad_param(prompt_param, id.status().message()));
    }
    job->group->set_id(c, id.value());
  }

  // Either chunked body ends here: a client that went away (or a body cut short) cancels what is
  // left of its choices; the handler count drops either way.
  auto release = [this, job](bool success) {
    if (!success || !job->group->all_finished()) {
      counters.client_disconnects++;
      job->group->cancel_all(engine);
    } else {
      counters.completed++;
    }
    untrack(job->group);
    active_handlers--;
  };
  if (r.stream) {
    res.set_header("Cache-Control", "no-cache");
    res.set_header("X-Accel-Buffering", "no");
    guard.n = nullptr;  // the releaser ends the count
    res.set_chunked_content_provider(
        "text/event-stream",
        [this, job](size_t, httplib::DataSink& sink) {
          bool ok = true;
          auto write = [&](const std::string& s) {
            if (ok) ok = sink.write(s.data(), s.size());
            job->last_write = Clock::now();
          };
          const bool done = drain_events(*job, kPoll, [&](const RequestGroup::Event& ev) {
            const auto f = ev.out.finish;
            if (f == EngineFinish::kCancelled || f == EngineFinish::kError) return;
            if (job->meta.endpoint == Endpoint::kChat && !job->started[size_t(ev.index)]) {
              // Chat's first chunk carries the role with empty content, as OpenAI sends it.
              write(sse_event(stream_chunk(job->meta, tok, ev.index, EngineOutput{}, "", true, job->include_usage)));
              job->started[size_t(ev.index)] = true;
            }
            const bool has_logprobs = job->meta.want_logprobs && !ev.out.tokens.empty();
            if (ev.out.text.empty() && f == EngineFinish::kNone && !has_logprobs) return;
            std::string text = ev.out.text;
            if (!job->echo[size_t(ev.index)].empty() && job->choices[size_t(ev.index)].tokens.size() <= ev.out.tokens.size()) {
              text = job->echo[size_t(ev.index)] + text;  // echo: the prompt leads the first chunk
            }
            write(sse_event(stream_chunk(job->meta, tok, ev.index, ev.out, text, false, job->include_usage)));
          });
          if (ok && !done && Clock::now() - job->last_write > kHeartbeat) write(": keep-alive\n\n");
          if (!ok) return false;  // client gone: the releaser cancels
          if (!done) return true;
          std::string message;
          if (any_error(*job, message)) {
            write(sse_event({{"error", {{"message", message}, {"type", "server_error"}, {"param", nullptr},
                                        {"code", nullptr}}}}));
          } else if (job->include_usage) {
            write(sse_event(usage_chunk(job->meta, usage_json(job->choices, job->n))));
          }
          write(kSseDone);
          if (ok) sink.done();
          return ok;
        },
        release);
    return;
  }

  // Non-streaming: usually done within kDirectWait, answered with a plain body and a real status.
  const auto until = Clock::now() + kDirectWait;
  bool done = false;
  while (!done && Clock::now() < until) done = drain_events(*job, kPoll, [](const RequestGroup::Event&) {});
  auto body = [this, job]() -> std::pair<int, std::string> {
    std::string message;
    if (any_error(*job, message)) {
      const bool shutdown = job->group->cancelled_by_shutdown;
      return {shutdown ? 503 : 500, error_body(api_error(shutdown ? 503 : 500, message, "server_error"))};
    }
    return {200, dump_json(full_response(job->meta, tok, job->choices, job->echo, job->n))};
  };
  if (done) {
    auto [status, text] = body();
    res.status = status;
    res.set_content(text, "application/json");
    counters.completed++;
    untrack(job->group);
    return;
  }
  // Still running: commit to 200 and a chunked body; leading whitespace (valid JSON) every second
  // notices a client that went away.
  guard.n = nullptr;
  res.set_chunked_content_provider(
      "application/json",
      [job, body](size_t, httplib::DataSink& sink) {
        const bool finished = drain_events(*job, kPoll, [](const RequestGroup::Event&) {});
        if (!finished) {
          if (Clock::now() - job->last_write < kHeartbeat) return true;
          job->last_write = Clock::now();
          return sink.write(" ", 1);
        }
        const std::string text = body().second;
        if (!sink.write(text.data(), text.size())) return false;
        sink.done();
        return true;
      },
      release);
}

}  // namespace tern::api
