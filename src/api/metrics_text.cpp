// GET /metrics: the engine's metrics and the server's counters in the Prometheus text format (0.0.4).
#include <cmath>
#include <sstream>

#include "api/server_impl.h"
#include "parallel/communicator.h"

namespace tern::api {
namespace {

void metric(std::ostringstream& o, const char* name, const char* type, const char* help, double v) {
  o << "# HELP " << name << ' ' << help << "\n# TYPE " << name << ' ' << type << '\n' << name << ' ' << v << '\n';
}

std::string le(double b) {
  std::ostringstream s;
  s << b;
  return s.str();
}

void histogram(std::ostringstream& o, const char* name, const char* help, const EngineMetrics::Histogram& h) {
  o << "# HELP " << name << ' ' << help << "\n# TYPE " << name << " histogram\n";
  for (size_t i = 0; i < h.bounds_s.size() && i < h.counts.size(); ++i) {
    o << name << "_bucket{le=\"" << le(h.bounds_s[i]) << "\"} " << h.counts[i] << '\n';
  }
  o << name << "_bucket{le=\"+Inf\"} " << h.count << '\n';
  o << name << "_sum " << h.sum_s << '\n' << name << "_count " << h.count << '\n';
}

}  // namespace

std::string ApiServer::Impl::metrics_text() const {
  const EngineMetrics m = engine.metrics();
  std::ostringstream o;
  o.precision(10);
  metric(o, "tern_requests_running", "gauge", "Sequences the engine is running.", double(m.running));
  metric(o, "tern_requests_waiting", "gauge", "Sequences waiting for admission.", double(m.waiting));
  metric(o, "tern_requests_preempted_total", "counter", "Preemptions since start.", double(m.preempted_total));
  metric(o, "tern_kv_blocks_used", "gauge", "KV cache blocks in use.", double(m.kv_blocks_used));
  metric(o, "tern_kv_blocks_free", "gauge", "KV cache blocks free.", double(m.kv_blocks_free));
  metric(o, "tern_kv_blocks_total", "gauge", "KV cache blocks in the pool.", double(m.kv_blocks_total));
  metric(o, "tern_prefix_cache_hit_rate", "gauge", "Cached prompt tokens / prompt tokens.", m.prefix_cache_hit_rate);
  metric(o, "tern_prompt_tokens_total", "counter", "Prompt tokens processed.", double(m.prompt_tokens_total));
  metric(o, "tern_generation_tokens_total", "counter", "Tokens generated.", double(m.generated_tokens_total));
  metric(o, "tern_prompt_tokens_per_second", "gauge", "Recent prompt throughput.", m.prompt_tokens_per_s);
  metric(o, "tern_generation_tokens_per_second", "gauge", "Recent generation throughput.", m.generated_tokens_per_s);
  histogram(o, "tern_time_to_first_token_seconds", "Time to first token.", m.time_to_first_token);
  histogram(o, "tern_inter_token_latency_seconds", "Time between tokens of a sequence.", m.inter_token_latency);
  histogram(o, "tern_e2e_request_latency_seconds", "Request latency, add to last token.", m.e2e_latency);
  metric(o, "tern_http_requests_total", "counter", "HTTP requests received.", double(counters.http_requests.load()));
  metric(o, "tern_http_requests_in_flight", "gauge", "Engine requests admitted by the server and not finished.",
         double(in_flight->load()));
  metric(o, "tern_http_rejected_queue_full_total", "counter", "Requests answered 429 (queue full).",
         double(counters.rejected_queue_full.load()));
  metric(o, "tern_http_rejected_slo_total", "counter",
         "Requests answered 429 because their time-to-first-token target could not be met given the queue.",
         double(counters.rejected_slo.load()));
  metric(o, "tern_http_client_disconnects_total", "counter", "Requests cancelled because the client went away.",
         double(counters.client_disconnects.load()));
  metric(o, "tern_http_requests_completed_total", "counter", "Generation requests answered in full.",
         double(counters.completed.load()));
  metric(o, "tern_http_connections_open", "gauge", "Client connections open (idle ones included).",
         double(front.connections()));
  metric(o, "tern_http_refused_origin_total", "counter", "Requests refused for a cross-site Origin (403).",
         double(counters.refused_origin.load()));
  metric(o, "tern_http_refused_host_total", "counter", "Requests refused for a foreign Host on a loopback bind (403).",
         double(counters.refused_host.load()));
  // Speculative decoding (zero without --speculative): acceptance rate = accepted / drafted, mean
  // tokens per verifying step = emitted / verify steps.
  metric(o, "tern_spec_draft_tokens_total", "counter", "Draft tokens proposed for verification.",
         double(m.spec_draft_tokens));
  metric(o, "tern_spec_accepted_tokens_total", "counter", "Draft tokens the target model accepted.",
         double(m.spec_accepted_tokens));
  metric(o, "tern_spec_verify_steps_total", "counter", "Sequence-steps that verified at least one draft.",
         double(m.spec_verify_steps));
  metric(o, "tern_spec_emitted_tokens_total", "counter",
         "Tokens emitted by verifying steps (accepted drafts + the corrected or bonus token).",
         double(m.spec_emitted_tokens));
  if (opt.tp_comm) {  // tensor parallelism: what rank 0 sent to the other ranks
    const CommStats c = opt.tp_comm->stats();
    const double tokens = double(m.prompt_tokens_total + m.generated_tokens_total);
    metric(o, "tern_tp_ranks", "gauge", "Tensor-parallel ranks.", double(opt.tp_comm->size()));
    metric(o, "tern_tp_all_reduce_bytes_total", "counter", "Bytes rank 0 all-reduced (2 per layer per token).",
           double(c.all_reduce_bytes));
    metric(o, "tern_tp_sent_bytes_total", "counter", "Bytes rank 0 sent: all-reduces, step broadcasts, gathers.",
           double(c.total()));
    metric(o, "tern_tp_all_reduce_bytes_per_token", "gauge",
           "All-reduced bytes per token processed (prompt + generated); 2 x layers x hidden x 4 for f32.",
           tokens > 0 ? double(c.all_reduce_bytes) / tokens : 0.0);
  }
  return o.str();
}

}  // namespace tern::api
