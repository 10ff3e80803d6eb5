// tern serve: the OpenAI-compatible HTTP server (src/api/) over the serving engine.
// SIGTERM / SIGINT: stop taking requests (503), let in-flight ones finish within --shutdown-grace, cancel
// the rest, exit 0; a second SIGTERM / SIGINT cancels what is in flight at once. Without --api-key the
// default bind address is loopback only.
#include <pthread.h>
#include <signal.h>
#include <sys/resource.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <filesystem>
#include <thread>

#include <fmt/format.h>

#include "api/request_guard.h"
#include "api/server.h"
#include "cli_common.h"
#include "text/chat_template/chat_template.h"
#include "engine/fake_model_runner.h"
#include "formats/model_config.h"
#include "kv/paged_kv_cache.h"
#include "parallel_session.h"
#include "planned_engine.h"
#include "speculative_args.h"

namespace tern::cli {

namespace {

struct ServeOptions {
  std::string model;
  std::string host;  // "": 127.0.0.1, or 0.0.0.0 when an API key guards the server
  int port = 8080;
  std::string api_key;
  std::vector<std::string> served_names;
  int64_t max_queue = 256;
  int http_threads = 0;
  double max_body_mb = 4;
  double max_header_kb = 32;
  int max_header_fields = 100;
  double header_timeout_s = 10, body_timeout_s = 60;
  double timeout_s = 30;
  int max_connections = 10000;
  std::vector<std::string> cors_origins, allowed_hosts;
  bool metrics_public = false;
  bool no_webui = false;
  double shutdown_grace_s = 30;
  double kv_memory_mb = 0;  // 0: the planner's default for this machine
  int64_t max_running = 256;
  std::string scheduling_policy;  // "": slo when a latency target is set, else priority
  double slo_ttft_ms = 0, slo_tpot_ms = 0;
  KvDType kv_dtype = KvDType::BF16;  // the engine's default
  bool fake_engine = false;
  double fake_steps_per_s = 200;
  RuntimeOptions runtime;
  ParallelOptions parallel;
  SpeculativeArgs speculative;
};

// Many concurrent clients need many descriptors: lift the soft limit to the hard one.
void raise_fd_limit() {
  rlimit r{};
  if (getrlimit(RLIMIT_NOFILE, &r) == 0 && r.rlim_cur < r.rlim_max) {
    r.rlim_cur = r.rlim_max;
    setrlimit(RLIMIT_NOFILE, &r);
  }
}

// What the server runs on; members are destroyed in reverse order (the engine first).
struct EngineStack {
  std::unique_ptr<Runtime> runtime;
  std::unique_ptr<Model> model;
  std::unique_ptr<Engine> engine;
};

EngineStack make_engine(const ServeOptions& o, const Tokenizer& tok, int64_t max_context, const ParallelSession* par) {
  EngineOptions eo;
  eo.kv_memory_bytes = size_t(o.kv_memory_mb * 1024 * 1024);
  eo.max_running = std::max<int64_t>(1, std::min<int64_t>(o.max_running, o.max_queue));
  eo.kv_dtype = o.kv_dtype;
  const bool slo = o.slo_ttft_ms > 0 || o.slo_tpot_ms > 0;
  eo.policy = o.scheduling_policy.empty() ? (slo ? "slo" : "priority") : o.scheduling_policy;
  if (slo && eo.policy != "slo") fail("--slo-ttft-ms / --slo-tpot-ms need --scheduling-policy slo (got " + eo.policy + ")");
  EngineStack s;
  if (o.fake_engine) {
    // The real engine (scheduler, paged KV, prefix cache) over a weightless runner: HTTP and engine
    // behaviour can be tested end to end without model compute.
    FakeRunnerOptions fo;
    fo.vocab_size = tok.vocab_size();
    fo.max_context = max_context;
    fo.step_delay = std::chrono::microseconds(int64_t(1e6 / o.fake_steps_per_s));
    if (eo.kv_memory_bytes == 0) eo.kv_memory_bytes = size_t(64) << 20;
    if (o.speculative.method != "none") fail("--test-fake-engine runs without --speculative");
    s.engine = unwrap(Engine::create(std::make_unique<FakeModelRunner>(fo), &tok, eo));
    return s;
  }
  s.runtime = std::make_unique<Runtime>(o.runtime);
  s.model = load_model(o.model, o.runtime, par);
  // No --kv-memory-mb / a large --max-running: the planner's numbers (planned_engine.h).
  plan_kv_pool_budget(*s.model, eo);
  auto drafter = make_speculative(o.speculative, o.runtime, *s.runtime, *s.model, &tok,
                                  PagedKvCache::block_bytes_for(s.model->config(), eo.block_size, eo.kv_dtype), eo);
  std::unique_ptr<ModelRunner> runner = make_engine_runner(*s.runtime, *s.model, eo);
  plan_batch_limit(*runner, eo);
  s.engine = unwrap(Engine::create(std::move(runner), &tok, eo, std::move(drafter)));
  return s;
}

void serve(const ServeOptions& o) {
  // Ranks other than 0 of an `mpirun ... --tp N` job serve rank 0's decoder calls, nothing else.
  auto par = o.fake_engine ? nullptr : ParallelSession::start(o.parallel, o.runtime);
  if (par && par->worker()) return par->run_worker(o.model, o.runtime);
  // Signals are taken by one thread (sigwait), so every thread started below inherits the mask.
  sigset_t sigs;
  sigemptyset(&sigs);
  sigaddset(&sigs, SIGTERM);
  sigaddset(&sigs, SIGINT);
  sigaddset(&sigs, SIGUSR1);
  pthread_sigmask(SIG_BLOCK, &sigs, nullptr);
  signal(SIGPIPE, SIG_IGN);
  raise_fd_limit();

  // A model directory or a .gguf file: config, tokenizer and chat template from either.
  const ModelConfig config = load_any_model_config(o.model);
  auto tok = load_tokenizer_if_present(o.model);
  if (!tok) fail(o.model + ": no tokenizer.json (tern serve needs one)");
  auto tmpl = try_load_model_chat_template(o.model);
  const ModelChatTemplate* chat = tmpl.is_ok() ? &tmpl.value() : nullptr;
  if (!chat) std::fprintf(stderr, "[tern] no chat template (%s): /v1/chat/completions answers 400\n",
                          tmpl.status().message().c_str());

  api::ServerOptions so;
  so.host = o.host.empty() ? (o.api_key.empty() ? "127.0.0.1" : "0.0.0.0") : o.host;
  if (o.api_key.empty() && !api::is_loopback_name(so.host)) {
    std::fprintf(stderr, "[tern] warning: serving on %s without --api-key: anyone who can reach it may use it\n",
                 so.host.c_str());
  } else if (o.host.empty() && !o.api_key.empty()) {
    std::fprintf(stderr, "[tern] warning: --api-key without --host: listening on 0.0.0.0 (every network interface)%s\n",
                 o.metrics_public ? "; /metrics is open to the network (--metrics-public)" : "");
  }
  so.port = o.port;
  so.api_key = o.api_key;
  so.metrics_public = o.metrics_public;
  so.webui = !o.no_webui;
  so.cors_origins = o.cors_origins;
  so.allowed_hosts = o.allowed_hosts;
  so.model_names = o.served_names;
  if (so.model_names.empty()) so.model_names = {std::filesystem::path(o.model).filename().string()};
  if (so.model_names[0].empty()) so.model_names[0] = std::filesystem::path(o.model).parent_path().filename().string();
  so.max_context = config.max_position_embeddings > 0 ? config.max_position_embeddings : 2048;
  so.max_queue = o.max_queue;
  so.slo_scheduling = o.slo_ttft_ms > 0 || o.slo_tpot_ms > 0 || o.scheduling_policy == "slo";
  so.slo_ttft_s = o.slo_ttft_ms / 1e3;
  so.slo_tpot_s = o.slo_tpot_ms / 1e3;
  so.http_threads = o.http_threads;
  so.max_body_bytes = size_t(o.max_body_mb * 1024 * 1024);
  so.max_header_bytes = size_t(o.max_header_kb * 1024);
  so.max_header_fields = o.max_header_fields;
  so.header_timeout_s = o.header_timeout_s;
  so.body_timeout_s = o.body_timeout_s;
  so.write_timeout_s = o.timeout_s;
  so.max_connections = o.max_connections;
  rlimit fds{};
  if (getrlimit(RLIMIT_NOFILE, &fds) == 0 && fds.rlim_cur != RLIM_INFINITY) {
    // Room for the model files, the listener and the engine's own descriptors.
    so.max_connections = int(std::max<int64_t>(16, std::min<int64_t>(so.max_connections, int64_t(fds.rlim_cur) - 64)));
  }
  so.shutdown_grace_s = o.shutdown_grace_s;
  so.eos_ids = config.eos_token_ids;
  so.model_vocab = config.vocab_size;
  so.tp_comm = par ? par->comm() : nullptr;
  if (tok->eos_id() && std::find(so.eos_ids.begin(), so.eos_ids.end(), *tok->eos_id()) == so.eos_ids.end()) {
    so.eos_ids.push_back(*tok->eos_id());
  }
  if (chat) {
    for (int32_t id : end_of_turn_ids(*chat, *tok)) {
      if (std::find(so.eos_ids.begin(), so.eos_ids.end(), id) == so.eos_ids.end()) so.eos_ids.push_back(id);
    }
  }

  EngineStack stack = make_engine(o, *tok, so.max_context, par.get());
  Engine* engine = stack.engine.get();
  api::ApiServer server(*engine, *tok, chat, so);
  const int port = unwrap(server.bind());
  std::fprintf(stderr, "[tern] serving %s on http://%s:%d%s\n", so.model_names[0].c_str(), so.host.c_str(), port,
               o.fake_engine ? " (TEST FAKE ENGINE: no model compute)" : "");
  std::fflush(stderr);

  // A rank of a parallel job died: the step in progress will never return, so the requests in flight
  // are answered with 503 now and the process exits non-zero (below) without joining the engine.
  std::atomic<int> lost_rank{-1};
  if (par) {
    par->on_rank_lost([&](int rank) {
      lost_rank = rank;
      server.fail_in_flight(fmt::format("rank {} of the parallel job stopped", rank));
    });
  }
  std::thread signals([&] {
    for (int count = 0;; ++count) {
      int sig = 0;
      sigwait(&sigs, &sig);
      if (sig == SIGUSR1) return;  // the server ended on its own
      const char* name = sig == SIGTERM ? "SIGTERM" : "SIGINT";
      if (count == 0) {
        std::fprintf(stderr, "[tern] %s: draining in-flight requests (up to %g s; send it again to stop at once)\n",
                     name, o.shutdown_grace_s);
        server.shutdown();
      } else {
        std::fprintf(stderr, "[tern] second %s: cancelling in-flight requests now\n", name);
        server.shutdown_now();
      }
    }
  });
  server.run();
  pthread_kill(signals.native_handle(), SIGUSR1);
  signals.join();
  if (par) par->on_rank_lost(nullptr);  // the server is gone: a loss from here on is one error line
  if (lost_rank >= 0) {
    std::fprintf(stderr, "tern: error: rank %d of the parallel job stopped; the server cannot go on\n", lost_rank.load());
    std::fflush(stderr);
    std::_Exit(1);  // the engine thread waits on the dead rank forever: no join, no MPI finalize
  }
  engine->shutdown(/*cancel_in_flight=*/true);
  std::fprintf(stderr, "[tern] server stopped\n");
}

}  // namespace

void register_serve(CLI::App& app) {
  auto o = std::make_shared<ServeOptions>();
  auto* cmd = app.add_subcommand("serve", "OpenAI-compatible HTTP server (completions, chat, streaming, metrics)");
  add_model_option(*cmd, o->model);
  cmd->add_option("--host", o->host, "bind address (default 127.0.0.1; 0.0.0.0 when --api-key is given)");
  cmd->add_option("--port", o->port, "port (0: any free port)")->check(CLI::Range(0, 65535));
  cmd->add_option("--api-key", o->api_key,
                  "require Authorization: Bearer <key> on /v1/*, /tokenize, /detokenize and /metrics");
  cmd->add_flag("--metrics-public", o->metrics_public, "with --api-key: /metrics answers without the key");
  cmd->add_flag("--no-webui", o->no_webui, "GET / answers 404 instead of the web page (chat + dashboard)");
  cmd->add_option("--cors-origin", o->cors_origins,
                  "browser Origin allowed to call the API cross-site (repeatable; \"*\": any); others get 403");
  cmd->add_option("--allowed-host", o->allowed_hosts,
                  "on a loopback bind, a Host name accepted besides localhost / 127.0.0.1 / ::1 (repeatable)");
  cmd->add_option("--served-model-name", o->served_names, "model name(s) requests may use (default: dir name)");
  cmd->add_option("--max-queue", o->max_queue, "requests in flight (running + waiting) before 429")
      ->check(CLI::Range(int64_t(1), int64_t(1) << 20));
  cmd->add_option("--http-threads", o->http_threads, "threads that parse requests and write answers (default 4)")
      ->check(CLI::Range(0, 256));
  cmd->add_option("--max-body-mb", o->max_body_mb, "largest request body in MiB, chunked or not (413 past it)")
      ->check(CLI::Range(0.001, 1024.0));
  cmd->add_option("--max-header-kb", o->max_header_kb, "largest request line + header fields in KiB (431 past it)")
      ->check(CLI::Range(1.0, 1024.0));
  cmd->add_option("--max-header-fields", o->max_header_fields, "most header fields in a request (431 past it)")
      ->check(CLI::Range(8, 10000));
  cmd->add_option("--header-timeout", o->header_timeout_s, "seconds a request head may take to arrive (408 past it)")
      ->check(CLI::Range(0.1, 3600.0));
  cmd->add_option("--body-timeout", o->body_timeout_s, "seconds a request body may take once its head is in (408)")
      ->check(CLI::Range(0.1, 36000.0));
  cmd->add_option("--timeout", o->timeout_s, "seconds a write to a client may make no progress before it is dropped")
      ->check(CLI::Range(1.0, 3600.0));
  cmd->add_option("--max-connections", o->max_connections,
                  "open connections; past it the oldest one with no request in work is closed")
      ->check(CLI::Range(16, 1000000));
  cmd->add_option("--shutdown-grace", o->shutdown_grace_s, "seconds in-flight requests get after SIGTERM")
      ->check(CLI::Range(0.0, 3600.0));
  cmd->add_option("--kv-memory-mb", o->kv_memory_mb, "KV cache budget in MiB (default: the planner's for this machine)")
      ->check(CLI::Range(0.0, 1e9));
  cmd->add_option("--max-running", o->max_running, "sequences the engine runs at once")
      ->check(CLI::Range(int64_t(1), int64_t(1) << 16));
  cmd->add_option("--scheduling-policy", o->scheduling_policy,
                  "fcfs, priority, or slo (deadline-slack order, step budgets that keep the TPOT target, admission "
                  "that refuses what cannot meet its TTFT target; default with --slo-*: slo, else priority)")
      ->check(CLI::IsMember({"fcfs", "priority", "slo"}));
  cmd->add_option("--slo-ttft-ms", o->slo_ttft_ms, "time-to-first-token target of every request (a request may tighten "
                                                   "it with slo_ttft_ms); 0: none")
      ->check(CLI::Range(0.0, 3.6e6));
  cmd->add_option("--slo-tpot-ms", o->slo_tpot_ms, "time-per-output-token target (a request may tighten it with "
                                                   "slo_tpot_ms); 0: none")
      ->check(CLI::Range(0.0, 3.6e6));
  add_kv_dtype_option(*cmd, o->kv_dtype);
  cmd->add_flag("--test-fake-engine", o->fake_engine,
                "TESTS ONLY: the engine over a weightless fake model runner (no model compute)");
  cmd->add_option("--test-fake-steps-per-s", o->fake_steps_per_s, "TESTS ONLY: fake runner steps per second")
      ->check(CLI::Range(0.1, 1e6));
  add_speculative_options(*cmd, o->speculative);
  o->runtime.cuda_capable = true;  // the engine runs on CudaModelRunner with --device cuda
  o->runtime.add_to(*cmd);
  o->parallel.add_to(*cmd);
  cmd->callback([o] { serve(*o); });
}

}  // namespace tern::cli
