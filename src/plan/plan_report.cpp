// A plan as JSON (every figure, in bytes and per-second units) and as the table a person reads.
#include <fmt/format.h>

#include <nlohmann/json.hpp>

#include "plan/planner.h"

namespace tern::plan {

namespace {

std::string gb(double bytes) { return fmt::format("{:.2f} GB", bytes / 1e9); }
std::string billions(int64_t n) { return fmt::format("{:.2f} B", double(n) / 1e9); }
std::string rate(double x) { return x >= 100 ? fmt::format("{:.0f}", x) : fmt::format("{:.2f}", x); }

}  // namespace

std::string plan_to_json(const PlanRequest& r, const Plan& p) {
  using nlohmann::json;
  const MemoryPerDevice& m = p.memory;
  json j = {
      {"model", {{"source", r.model.name}, {"architecture", r.model.architecture}, {"model_type", r.model.model_type},
                 {"parameters", p.params.total()}, {"active_parameters", p.params.active}}},
      {"weights", r.weights.name},
      {"kv_dtype", r.kv.name},
      {"device", r.device.id},
      {"context", p.context},
      {"prompt_tokens", p.prompt_tokens},
      {"fits", p.fits},
      {"reason", p.reason},
      {"suggestions", p.suggestions},
      {"split", {{"tp", p.tp}, {"pp", p.pp}, {"replicas", p.replicas}, {"devices", p.devices()}}},
      {"memory_bytes",
       {{"weights_total", p.bytes.total},
        {"kv_per_token", p.kv_bytes_per_token},
        {"per_device",
         {{"weights", m.weights}, {"kv_per_token", m.kv_per_token}, {"kv_total", m.kv_total},
          {"activations", m.activations}, {"overhead", m.overhead}, {"used", m.used()}, {"capacity", m.capacity}}}}},
      {"max_concurrency", p.max_concurrency},
      {"concurrency", p.concurrency},
      {"prefill_tok_s", p.prefill_tok_s},
      {"decode_tok_s_per_seq", p.decode_tok_s_per_seq},
      {"decode_tok_s", p.decode_tok_s},
      {"decode_memory_bound", p.decode_memory_bound},
      {"decode_step_s", p.decode_step_s},
      {"decode_step_fixed_s", p.decode_step_fixed_s},
      {"cost_per_m_input_tokens", p.cost_per_m_input},
      {"cost_per_m_output_tokens", p.cost_per_m_output},
      {"joules_per_input_token", p.joules_per_input_token},
      {"joules_per_output_token", p.joules_per_output_token},
      {"params",
       {{"embedding", p.params.embedding}, {"lm_head", p.params.lm_head}, {"attention", p.params.attention},
        {"dense_mlp", p.params.dense_mlp}, {"routed_experts", p.params.routed_experts},
        {"shared_experts", p.params.shared_experts}, {"routers", p.params.routers}, {"norms", p.params.norms}}},
  };
  return j.dump(2);
}

std::string plan_to_table(const PlanRequest& r, const Plan& p) {
  const MemoryPerDevice& m = p.memory;
  std::string o;
  auto row = [&](const std::string& k, const std::string& v) { o += fmt::format("  {:<30} {}\n", k, v); };
  o += fmt::format("tern plan: {} ({}) on {}\n", r.model.name, r.model.architecture, r.device.name);
  row("parameters", p.params.active != p.params.total()
                        ? fmt::format("{} total, {} active per token", billions(p.params.total()), billions(p.params.active))
                        : billions(p.params.total()));
  row("weights", fmt::format("{} at {}", gb(p.bytes.total), r.weights.name));
  row("KV cache per token", fmt::format("{:.1f} KiB at {} ({} bytes)", p.kv_bytes_per_token / 1024, r.kv.name,
                                        int64_t(p.kv_bytes_per_token)));
  row("context / prompt", fmt::format("{} / {} tokens", p.context, p.prompt_tokens));
  o += fmt::format("{}\n", p.fits ? "fits:" : "DOES NOT FIT:");
  if (!p.fits) {
    row("why", p.reason);
    for (const auto& s : p.suggestions) row("would fit", s);
  }
  row("devices", fmt::format("{} × {} (tp {} × pp {}{})", p.devices(), r.device.id, p.tp, p.pp,
                             p.replicas > 1 ? fmt::format(", {} replicas", p.replicas) : ""));
  o += "memory per device:\n";
  row("  weights", gb(m.weights));
  row("  KV cache", fmt::format("{} ({} sequences × {} tokens)", gb(m.kv_total), p.concurrency, p.context));
  row("  activations / workspace", gb(m.activations));
  row("  runtime overhead", gb(m.overhead));
  row("  total / usable", fmt::format("{} / {}", gb(m.used()), gb(m.capacity)));
  row("largest concurrency that fits", fmt::format("{} sequences of {} tokens", p.max_concurrency, p.context));
  o += "speed (roofline):\n";
  row("  prefill", fmt::format("{} tok/s per replica", rate(p.prefill_tok_s)));
  row("  decode", fmt::format("{} tok/s per sequence, {} tok/s total at {} sequences ({})", rate(p.decode_tok_s_per_seq),
                              rate(p.decode_tok_s), p.concurrency * p.replicas,
                              p.decode_memory_bound ? "memory-bound" : "compute-bound"));
  o += "cost:\n";
  row("  $ per million tokens", fmt::format("input ${:.4f}, output ${:.4f} (at ${:.2f}/h per device)", p.cost_per_m_input,
                                            p.cost_per_m_output, r.device.price_per_hour));
  row("  energy per token", fmt::format("input {:.4f} J, output {:.4f} J (at {:.0f} W per device)",
                                        p.joules_per_input_token, p.joules_per_output_token, r.device.power_w));
  return o;
}

}  // namespace tern::plan
