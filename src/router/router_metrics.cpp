// GET /metrics of the router (Prometheus text 0.0.4): its own counters and, per replica (label
// replica="<url>"), health, load, requests, retries, failures, affinity hits and spills, cut streams.
#include <sstream>

#include "router/router_impl.h"

namespace tern::router {

namespace {

void head(std::ostringstream& o, const char* name, const char* type, const char* help) {
  o << "# HELP " << name << ' ' << help << "\n# TYPE " << name << ' ' << type << '\n';
}

void metric(std::ostringstream& o, const char* name, const char* type, const char* help, double v) {
  head(o, name, type, help);
  o << name << ' ' << v << '\n';
}

// Label values escape \ " and newlines (the text format's rule); URLs have none, but a file may.
std::string label(const std::string& v) {
  std::string out;
  for (char c : v) {
    if (c == '\\' || c == '"') out += '\\';
    if (c == '\n') {
      out += "\\n";
      continue;
    }
    out += c;
  }
  return out;
}

}  // namespace

std::string Router::Impl::metrics_text() {
  std::ostringstream o;
  o.precision(10);
  int64_t in_flight = 0, healthy = 0;
  for (const auto& r : set.all()) {
    in_flight += r->in_flight;
    healthy += r->healthy ? 1 : 0;
  }
  metric(o, "tern_router_requests_total", "counter", "Requests forwarded (each counted once, retries aside).",
         double(requests_total));
  metric(o, "tern_router_unrouted_total", "counter", "Requests answered 503: no healthy replica could take them.",
         double(unrouted_total));
  metric(o, "tern_router_cut_streams_total", "counter", "Streams ended with an error event when their replica failed.",
         double(cut_streams_total));
  metric(o, "tern_router_in_flight", "gauge", "Requests on replicas now.", double(in_flight));
  metric(o, "tern_router_replicas", "gauge", "Replicas in the set.", double(set.all().size()));
  metric(o, "tern_router_replicas_healthy", "gauge", "Replicas in the rotation.", double(healthy));
  metric(o, "tern_router_reloads_total", "counter", "Replica file reloads applied.", double(reloads_total));
  metric(o, "tern_router_reload_errors_total", "counter", "Replica file reloads refused (the set was kept).",
         double(reload_errors_total));
  metric(o, "tern_router_draining", "gauge", "1 once SIGTERM began the drain.", draining ? 1.0 : 0.0);

  struct Series {
    const char* name;
    const char* type;
    const char* help;
    double (*value)(const Replica&);
  };
  static const Series series[] = {
      {"tern_router_replica_up", "gauge", "1 while the replica is in the rotation.",
       [](const Replica& r) { return r.healthy ? 1.0 : 0.0; }},
      {"tern_router_replica_in_flight", "gauge", "The router's requests on the replica now.",
       [](const Replica& r) { return double(r.in_flight); }},
      {"tern_router_replica_queued", "gauge", "Running + waiting on the replica at its last poll.",
       [](const Replica& r) { return double(r.queued); }},
      {"tern_router_replica_requests_total", "counter", "Attempts sent to the replica (retries included).",
       [](const Replica& r) { return double(r.requests); }},
      {"tern_router_replica_retries_total", "counter", "Attempts on the replica retried on another one.",
       [](const Replica& r) { return double(r.retries); }},
      {"tern_router_replica_failures_total", "counter", "Attempts the replica failed (connection, reset, timeout).",
       [](const Replica& r) { return double(r.failures); }},
      {"tern_router_replica_affinity_hits_total", "counter", "Prefix-affinity requests that went to their home replica.",
       [](const Replica& r) { return double(r.affinity_hits); }},
      {"tern_router_replica_affinity_spills_total", "counter",
       "Prefix-affinity requests that came here because their home was full or down.",
       [](const Replica& r) { return double(r.affinity_spills); }},
      {"tern_router_replica_cut_streams_total", "counter", "Streams cut by the replica's failure.",
       [](const Replica& r) { return double(r.cut_streams); }},
      {"tern_router_replica_down_total", "counter", "Times the replica was taken out of the rotation.",
       [](const Replica& r) { return double(r.went_down); }},
  };
  for (const Series& s : series) {
    head(o, s.name, s.type, s.help);
    for (const auto& r : set.all()) o << s.name << "{replica=\"" << label(r->addr.url) << "\"} " << s.value(*r) << '\n';
  }
  return o.str();
}

}  // namespace tern::router
