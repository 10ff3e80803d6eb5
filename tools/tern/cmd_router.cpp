// tern router: an OpenAI-compatible front over `tern serve` replicas (src/router/, docs/router.md).
// SIGTERM / SIGINT: drain (new requests 503, in-flight ones finish, exit 0); a second one stops at once.
// SIGHUP: re-read --replicas FILE.
#include <pthread.h>
#include <signal.h>
#include <sys/resource.h>

#include <cstdio>
#include <thread>

#include "api/request_guard.h"
#include "cli_common.h"
#include "router/router.h"

namespace tern::cli {

namespace {

struct RouterArgs {
  router::RouterOptions o;
  std::string host;  // "": 127.0.0.1, or 0.0.0.0 when an API key guards the router (as `tern serve`)
  std::string policy = "affinity";
  double max_body_mb = 4;
  double max_header_kb = 32;
};

void run_router(RouterArgs& a) {
  sigset_t sigs;
  sigemptyset(&sigs);
  sigaddset(&sigs, SIGTERM);
  sigaddset(&sigs, SIGINT);
  sigaddset(&sigs, SIGHUP);
  sigaddset(&sigs, SIGUSR1);
  pthread_sigmask(SIG_BLOCK, &sigs, nullptr);  // before any thread starts: one thread takes them all
  signal(SIGPIPE, SIG_IGN);
  rlimit r{};
  if (getrlimit(RLIMIT_NOFILE, &r) == 0 && r.rlim_cur < r.rlim_max) {
    r.rlim_cur = r.rlim_max;  // two descriptors per request in flight (client and replica)
    setrlimit(RLIMIT_NOFILE, &r);
  }

  a.o.policy = unwrap(router::parse_policy(a.policy));
  a.o.max_body_bytes = size_t(a.max_body_mb * 1024 * 1024);
  a.o.max_header_bytes = size_t(a.max_header_kb * 1024);
  a.o.host = a.host.empty() ? (a.o.api_key.empty() ? "127.0.0.1" : "0.0.0.0") : a.host;
  if (a.o.api_key.empty() && !api::is_loopback_name(a.o.host)) {
    std::fprintf(stderr, "[tern] warning: routing on %s without --api-key: anyone who can reach it may use it\n",
                 a.o.host.c_str());
  } else if (a.host.empty() && !a.o.api_key.empty()) {
    std::fprintf(stderr, "[tern] warning: --api-key without --host: listening on 0.0.0.0 (every network interface)%s\n",
                 a.o.metrics_public ? "; /metrics is open to the network (--metrics-public)" : "");
  }
  auto router = unwrap(router::Router::create(a.o));
  const int port = unwrap(router->start());
  std::fprintf(stderr, "[tern] router (%s) on http://%s:%d\n", a.policy.c_str(), a.o.host.c_str(), port);
  std::fflush(stderr);

  std::thread signals([&] {
    for (;;) {
      int sig = 0;
      sigwait(&sigs, &sig);
      if (sig == SIGUSR1) return;  // the router ended
      if (sig == SIGHUP) {
        router->reload();
        continue;
      }
      std::fprintf(stderr, "[tern] router: %s: draining (send it again to stop at once)\n",
                   sig == SIGTERM ? "SIGTERM" : "SIGINT");
      router->shutdown();
    }
  });
  router->run();
  pthread_kill(signals.native_handle(), SIGUSR1);
  signals.join();
  router.reset();
  std::fprintf(stderr, "[tern] router stopped\n");
}

}  // namespace

void register_router(CLI::App& app) {
  auto a = std::make_shared<RouterArgs>();
  auto* cmd = app.add_subcommand("router", "OpenAI-compatible router over tern serve replicas (prefix affinity, failover)");
  cmd->add_option("--replica", a->o.replicas, "a replica's URL, http://host:port (repeatable)");
  cmd->add_option("--replicas", a->o.replicas_file, "a file of replica URLs, one a line (# comments); re-read on SIGHUP");
  cmd->add_option("--host", a->host, "bind address (default 127.0.0.1; 0.0.0.0 when --api-key is given)");
  cmd->add_option("--port", a->o.port, "port (0: any free port)")->check(CLI::Range(0, 65535));
  cmd->add_option("--api-key", a->o.api_key,
                  "require Authorization: Bearer <key> (all but /health) and send it to the replicas; without it "
                  "the client's Authorization header is passed through (x-api-key: <key> is accepted too)");
  cmd->add_flag("--metrics-public", a->o.metrics_public, "with --api-key: /metrics answers without the key");
  cmd->add_option("--cors-origin", a->o.cors_origins,
                  "browser Origin allowed to call the API cross-site (repeatable; \"*\": any); others get 403");
  cmd->add_option("--allowed-host", a->o.allowed_hosts,
                  "on a loopback bind, a Host name accepted besides localhost / 127.0.0.1 / ::1 (repeatable)");
  cmd->add_option("--policy", a->policy, "affinity (prefix affinity, least load for the rest), least-load, round-robin")
      ->check(CLI::IsMember({"affinity", "least-load", "round-robin"}));
  cmd->add_option("--balance", a->o.balance, "prefix affinity's load bound: at most this times the mean load per replica")
      ->check(CLI::Range(1.0, 100.0));
  cmd->add_option("--balance-slack", a->o.balance_slack,
                  "prefix affinity's load bound: this many requests more than --balance x the mean load")
      ->check(CLI::Range(0, 1000000));
  cmd->add_option("--affinity-prompt-bytes", a->o.prompt_bytes, "completions: the prompt bytes hashed for affinity")
      ->check(CLI::Range(size_t(1), size_t(1) << 30));
  cmd->add_option("--health-interval", a->o.health_interval_s, "seconds between health checks of each replica")
      ->check(CLI::Range(0.05, 3600.0));
  cmd->add_option("--health-timeout", a->o.health_timeout_s, "seconds a health check may take")
      ->check(CLI::Range(0.05, 3600.0));
  cmd->add_option("--connect-timeout", a->o.connect_timeout_s, "seconds to connect to a replica")
      ->check(CLI::Range(0.05, 3600.0));
  cmd->add_option("--upstream-timeout", a->o.upstream_timeout_s,
                  "seconds a replica may stay silent (before its answer or within a stream) before it counts as failed")
      ->check(CLI::Range(1.0, 86400.0));
  cmd->add_option("--shutdown-grace", a->o.shutdown_grace_s, "seconds in-flight requests get after SIGTERM")
      ->check(CLI::Range(0.0, 3600.0));
  cmd->add_option("--max-body-mb", a->max_body_mb, "largest request body in MiB (413 past it)")->check(CLI::Range(0.001, 1024.0));
  cmd->add_option("--max-header-kb", a->max_header_kb, "largest request line + header fields in KiB (431 past it)")
      ->check(CLI::Range(1.0, 1024.0));
  cmd->add_option("--max-header-fields", a->o.max_header_fields, "most header fields in a request (431 past it)")
      ->check(CLI::Range(8, 10000));
  cmd->add_option("--header-timeout", a->o.header_timeout_s, "seconds a request head may take to arrive (408 past it)")
      ->check(CLI::Range(0.1, 3600.0));
  cmd->add_option("--body-timeout", a->o.body_timeout_s, "seconds a request body may take once its head is in (408)")
      ->check(CLI::Range(0.1, 36000.0));
  cmd->add_option("--timeout", a->o.write_timeout_s, "seconds a write to a client may make no progress before it is dropped")
      ->check(CLI::Range(1.0, 3600.0));
  cmd->add_option("--http-threads", a->o.http_threads,
                  "threads that parse long request bodies for their affinity key (the rest runs on the I/O thread)")
      ->check(CLI::Range(1, 256));
  cmd->add_option("--max-connections", a->o.max_connections, "open client connections")->check(CLI::Range(16, 1000000));
  cmd->callback([a] { run_router(*a); });
}

}  // namespace tern::cli
