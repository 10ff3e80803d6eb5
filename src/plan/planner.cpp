#include "plan/planner.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <optional>

#include "plan/kv_bytes.h"

namespace tern::plan {

namespace {

constexpr double kGiB = double(1ull << 30);
constexpr int kMaxDevices = 64;  // the search for a split stops here

// Defaults filled in, so every later step sees concrete numbers.
PlanRequest resolve(const PlanRequest& in) {
  PlanRequest r = in;
  if (r.context <= 0) r.context = r.model.max_positions > 0 ? r.model.max_positions : 4096;
  if (r.prompt_tokens <= 0) r.prompt_tokens = std::max<int64_t>(1, r.context / 2);
  r.prompt_tokens = std::min(r.prompt_tokens, r.context);
  if (r.chunk_tokens <= 0) r.chunk_tokens = r.device.is_gpu() ? 2048 : 512;
  if (r.activation_bytes <= 0) r.activation_bytes = r.device.is_gpu() ? 2 : 4;
  return r;
}

// One device's share of one token's KV under tp × pp: the layers of the largest stage of the
// engine's split by bytes (pp_split_layers; Llama-3.2-1B on 2 stages: 10 of 16); KV heads split by
// tp (replicated when tp exceeds them); MLA's latent is replicated on every tensor-parallel rank.
double kv_per_token_device(const PlanRequest& r, int tp, int pp) {
  const ModelShape& s = r.model;
  double layers = s.layers;
  if (pp > 1) {
    const std::vector<int> bounds = pp_split_layers(pp_stage_bytes(s, r.weights), pp);
    layers = 0;
    for (size_t st = 0; st + 1 < bounds.size(); ++st) layers = std::max(layers, double(bounds[st + 1] - bounds[st]));
  }
  double share = 1.0;
  if (!s.is_mla()) share = std::ceil(double(s.kv_heads) / tp) / double(s.kv_heads);
  return layers * kv_bytes_per_token_layer(s, r.kv) * share;
}

// Workspace of one prefill chunk: residual, normed input, block output [chunk, hidden]; q and
// attention output [chunk, q_dim / tp]; gate and up [chunk, ffn / tp]; plus the f32 logits of every
// sequence that samples in a step (one row per sequence in flight; one when the concurrency is still
// to be chosen). This is the CPU engine's layout, and close to a GPU engine's peak.
double activation_bytes(const PlanRequest& r, int tp) {
  const ModelShape& s = r.model;
  const double q_dim = s.is_mla() ? double(s.heads) * (s.qk_nope_head_dim + s.qk_rope_head_dim) : double(s.heads) * s.head_dim;
  double ffn = s.moe_layers() < s.layers ? double(s.intermediate) : 0;
  if (s.is_moe()) {
    ffn = std::max(ffn, double(s.expert_intermediate) * (s.experts_per_token + s.n_shared_experts) + s.shared_intermediate);
  }
  const double per_token = 3.0 * s.hidden + 2.0 * q_dim / tp + 2.0 * ffn / tp;
  const double logit_rows = double(std::max<int64_t>(1, r.concurrency));
  return double(r.chunk_tokens) * per_token * r.activation_bytes + logit_rows * double(s.vocab) * 4.0;
}

struct Split {
  int tp = 1, pp = 1;
  MemoryPerDevice mem;
  int64_t max_concurrency = 0;
};

}  // namespace

double weights_per_device(const PlanRequest& r, const WeightBytes& b, double weights_total, int tp, int pp, int ep) {
  // Tensor parallelism cuts everything but what each rank holds whole (b.tp_replicated).
  const WeightBytes arith = weight_bytes(r.model, r.weights);
  const double k = arith.total > 0 ? weights_total / arith.total : 1.0;  // a measured checkpoint's scale
  const double rep = arith.tp_replicated * k;
  // Expert parallelism: a rank keeps 1/ep of each MoE layer's routed experts (b is already scaled).
  const double routed_layer = ep > 1 ? b.per_expert * double(r.model.n_experts) : 0.0;
  const double ep_saved = 1.0 - 1.0 / double(std::max(ep, 1));
  auto cut = [&](double bytes) { return (bytes - rep) / tp + rep; };
  if (pp <= 1) return cut(weights_total) - routed_layer * double(b.moe_layers) * ep_saved / tp;
  // Pipeline stages as the engine splits them (parallel/pp_layout.h, by bytes: the last stage's LM
  // head weighs against layers), the largest stage priced: its layers, the last one's head, the
  // first one's embedding table (gathered, but held), each stage's share of the replicated parts,
  // less what expert parallelism leaves to the stage's other expert groups.
  const PpStageBytes sb = pp_stage_bytes(r.model, r.weights);
  const std::vector<int> bounds = pp_split_layers(sb, pp);
  const std::vector<double> totals = pp_stage_totals(sb, bounds);
  const double rep_stage = rep / pp;
  double worst = 0;
  for (size_t st = 0; st < totals.size(); ++st) {
    int moe_layers = 0;
    for (int l = bounds[st]; l < bounds[st + 1]; ++l) moe_layers += r.model.is_moe_layer(l) ? 1 : 0;
    double held = totals[st] * k + (st == 0 ? b.embedding : 0.0);
    worst = std::max(worst, (held - rep_stage) / tp + rep_stage - routed_layer * moe_layers * ep_saved / tp);
  }
  return worst;
}

namespace {

Split evaluate_split(const PlanRequest& r, const WeightBytes& b, double weights_total, int tp, int pp) {
  Split sp;
  sp.tp = tp, sp.pp = pp;
  sp.mem.weights = weights_per_device(r, b, weights_total, tp, pp);
  sp.mem.kv_per_token = kv_per_token_device(r, tp, pp);
  sp.mem.activations = activation_bytes(r, tp);
  sp.mem.overhead = r.device.overhead_bytes();
  sp.mem.capacity = r.device.usable_bytes();
  const double free_kv = sp.mem.capacity - sp.mem.weights - sp.mem.activations - sp.mem.overhead;
  const double per_seq = sp.mem.kv_per_token * double(r.context);
  sp.max_concurrency = free_kv <= 0 ? 0 : int64_t(std::floor(free_kv / per_seq));
  return sp;
}

bool tp_valid(const ModelShape& s, int tp) { return tp >= 1 && s.heads % tp == 0; }

std::string gb(double bytes) { return fmt::format("{:.1f} GB", bytes / 1e9); }

// The splits to try, fewest devices first, tensor parallel (within a node) before pipeline stages.
std::vector<std::pair<int, int>> candidate_splits(const PlanRequest& r) {
  std::vector<std::pair<int, int>> out;
  for (int pp = 1; pp <= kMaxDevices; ++pp) {
    if (r.pp > 0 && pp != r.pp) continue;
    if (pp > r.model.layers) break;
    for (int tp = 1; tp * pp <= kMaxDevices; tp *= 2) {
      if (r.tp > 0 && tp != r.tp) continue;
      if (r.tp == 0 && (tp > r.device.devices_per_node || !tp_valid(r.model, tp))) continue;
      // Pipeline stages are whole nodes: once a model spans nodes, each stage uses a full node's TP group.
      if (r.tp == 0 && pp > 1 && tp * 2 <= r.device.devices_per_node && tp_valid(r.model, tp * 2)) continue;
      out.emplace_back(tp, pp);
    }
    if (r.tp > 0 && r.tp * pp > kMaxDevices) break;
  }
  std::stable_sort(out.begin(), out.end(), [](auto a, auto b) { return a.first * a.second < b.first * b.second; });
  return out;
}

void add_suggestions(const PlanRequest& r, const Plan& p, Plan* out);

// Matmul calls of one decode step: per layer q, k, v, o and the MLP's gate, up, down (per expert
// touched by the batch, plus the router and any shared expert), and the LM head.
int64_t matmul_calls_per_step(const ModelShape& s, int64_t batch) {
  int64_t mlp = 3;
  if (s.is_moe()) {
    const int64_t touched = std::min<int64_t>(s.n_experts, batch * std::max(s.experts_per_token, 1));
    mlp = 1 + 3 * touched + (s.n_shared_experts > 0 || s.shared_intermediate > 0 ? 3 : 0);
  }
  return s.layers * (4 + mlp) + 1;
}

}  // namespace

DecodeStep decode_step(const PlanRequest& r, const WeightBytes& b, double kv_dev, int tp, int pp, int64_t batch,
                       double avg_tokens) {
  const ModelShape& s = r.model;
  const Device& d = r.device;
  const double bw = d.bandwidth_gbs * 1e9 * d.decode_efficiency;
  // Stages run one after another for a step, so the step reads every stage's bytes: the whole
  // model's share of one tensor-parallel rank.
  // What tensor parallelism does not cut (norms, routers, MLA's q_a / kv_a) every rank reads whole.
  const double rep = std::min(b.tp_replicated, b.dense_stream);
  const double weight_bytes = (b.streamed(batch, s.n_experts, s.experts_per_token) - rep) / tp + rep;
  // Every stage's KV, one after another: all layers' share of one tensor-parallel rank (the stages
  // are uneven under the split by bytes, so not kv_dev × pp).
  const double kv_bytes = double(batch) * avg_tokens * (pp > 1 ? kv_per_token_device(r, tp, 1) : kv_dev);
  const TokenFlops f = token_flops(s);
  const double peak = d.flops(r.weights.compute) * d.decode_compute_efficiency();
  // The matmuls and attention are separate phases of a step: a compute-bound batched matmul does not
  // hide attention's KV reads. Each phase is its own roofline; attention reads KV at the device's
  // measured attention rate (its kernels convert and reduce as they read), else at the weights' rate.
  const double t_mem = weight_bytes / bw;
  const double t_compute = double(batch) * (f.matrices + f.lm_head) / tp / peak;
  const double kv_bw = d.attention_kv_gbs > 0 ? d.attention_kv_gbs * 1e9 : bw;
  const double t_attention =
      std::max(kv_bytes / kv_bw, double(batch) * f.attention_per_context_token * avg_tokens / tp / peak);
  double t_comm = 0;
  const double link = std::max(d.interconnect_gbs, 1e-3) * 1e9, lat = d.interconnect_latency_us * 1e-6;
  const double msg = double(batch) * s.hidden * r.activation_bytes;
  if (tp > 1) t_comm += 2.0 * s.layers * (lat + 2.0 * (tp - 1) / tp * msg / link);  // attention + MLP all-reduce
  if (pp > 1) t_comm += (pp - 1) * (lat + msg / link);
  // A step runs every layer (tensor ranks in step, pipeline stages one after another); the fixed
  // costs add to the roofline: they do not hide under the weight stream.
  const double t_fixed = d.decode_step_overhead_s(s.layers, matmul_calls_per_step(s, batch), batch);
  return {std::max(t_mem, t_compute) + t_attention + t_comm + t_fixed, t_mem >= t_compute, t_fixed};
}

Result<Plan> make_plan(const PlanRequest& request) {
  const PlanRequest r = resolve(request);
  const ModelShape& s = r.model;
  const Device& d = r.device;
  if (s.layers <= 0 || s.hidden <= 0) return Status::error("the model shape is empty");
  if (d.memory_gib <= 0 || d.bandwidth_gbs <= 0 || d.tflops.empty()) {
    return Status::error("device '" + d.id + "' lacks memory, bandwidth or FLOP/s figures");
  }
  if (r.tp < 0 || r.pp < 0 || r.concurrency < 0 || r.target_output_tok_s < 0) {
    return Status::error("tp, pp, concurrency and target throughput must not be negative");
  }
  if (r.tp > 0 && !tp_valid(s, r.tp)) {
    return Status::error(fmt::format("--tp {} does not divide the model's {} attention heads", r.tp, s.heads));
  }
  if (r.pp > s.layers) return Status::error(fmt::format("--pp {} exceeds the model's {} layers", r.pp, s.layers));
  if (r.tp * std::max(r.pp, 1) > kMaxDevices * 16) return Status::error("tp × pp is too large");

  Plan p;
  p.params = count_params(s);
  p.bytes = weight_bytes(s, r.weights);
  double weights_total = p.bytes.total;
  if (r.weight_bytes_override > 0) {  // measured checkpoint: scale the streamed part alike
    const double k = r.weight_bytes_override / p.bytes.total;
    p.bytes.dense_stream *= k, p.bytes.per_expert *= k, p.bytes.embedding *= k, p.bytes.tp_replicated *= k;
    weights_total = p.bytes.total = r.weight_bytes_override;
  }
  p.kv_bytes_per_token = double(s.layers) * kv_bytes_per_token_layer(s, r.kv);
  p.context = r.context;
  p.prompt_tokens = r.prompt_tokens;

  const int64_t needed = std::max<int64_t>(1, r.concurrency);
  const auto splits = candidate_splits(r);
  if (splits.empty()) return Status::error("no tensor/pipeline split to try (check --tp / --pp)");
  Split chosen = evaluate_split(r, p.bytes, weights_total, splits.back().first, splits.back().second);
  bool found = false;
  for (auto [tp, pp] : splits) {
    Split sp = evaluate_split(r, p.bytes, weights_total, tp, pp);
    if (sp.max_concurrency >= needed) {
      chosen = sp, found = true;
      break;
    }
  }
  p.tp = chosen.tp, p.pp = chosen.pp;
  p.memory = chosen.mem;
  p.max_concurrency = chosen.max_concurrency;
  p.fits = found;

  const double avg_tokens = double(r.prompt_tokens) + double(r.context - r.prompt_tokens) / 2.0;
  auto step = [&](int64_t batch) {
    return decode_step(r, p.bytes, p.memory.kv_per_token, p.tp, p.pp, batch, avg_tokens);
  };
  auto throughput = [&](int64_t batch) { return double(batch) / step(batch).seconds; };

  const int64_t usable = std::max<int64_t>(1, p.max_concurrency);
  if (r.concurrency > 0) {
    p.concurrency = r.concurrency;
  } else if (r.target_output_tok_s > 0) {
    // Fewest replicas, then the smallest batch per replica that reaches the target.
    p.replicas = std::max(1, int(std::ceil(r.target_output_tok_s / throughput(usable))));
    const double per_replica = r.target_output_tok_s / p.replicas;
    int64_t lo = 1, hi = usable;
    while (lo < hi) {
      const int64_t mid = (lo + hi) / 2;
      if (throughput(mid) >= per_replica) hi = mid;
      else lo = mid + 1;
    }
    p.concurrency = lo;
  } else {
    p.concurrency = usable;
  }
  p.memory.kv_total = p.memory.kv_per_token * double(r.context) * double(p.concurrency);

  const DecodeStep st = step(p.concurrency);
  p.decode_step_s = st.seconds;
  p.decode_step_fixed_s = st.fixed_seconds;
  p.decode_memory_bound = st.memory_bound;
  p.decode_tok_s_per_seq = 1.0 / st.seconds;
  p.decode_tok_s = double(p.concurrency) / st.seconds * p.replicas;

  // Prefill of long prompts keeps every stage busy (chunks pipeline), compute-bound unless the
  // chunk is too small to amortize reading the weights.
  const TokenFlops f = token_flops(s);
  const double flops_tok = f.matrices + f.lm_head / double(r.prompt_tokens) +
                           f.attention_per_context_token * double(r.prompt_tokens) / 2.0;
  const double n_dev = double(p.tp * p.pp);
  const double t_compute = flops_tok / (n_dev * d.flops(r.weights.compute) * d.prefill_efficiency);
  const double chunk = double(std::min(r.chunk_tokens, r.prompt_tokens));
  const double t_mem = p.bytes.streamed(int64_t(chunk), s.n_experts, s.experts_per_token) / n_dev /
                       (d.bandwidth_gbs * 1e9 * d.decode_efficiency) / chunk;
  double t_comm = 0;
  if (p.tp > 1) {
    t_comm = 2.0 * s.layers * 2.0 * (p.tp - 1) / p.tp * s.hidden * r.activation_bytes /
             (std::max(d.interconnect_gbs, 1e-3) * 1e9) / p.pp;
  }
  p.prefill_tok_s = 1.0 / (std::max(t_compute, t_mem) + t_comm);

  const double replica_devices = double(p.tp * p.pp);
  p.cost_per_m_output = double(p.devices()) * d.price_per_hour / (p.decode_tok_s * 3600.0) * 1e6;
  p.cost_per_m_input = replica_devices * d.price_per_hour / (p.prefill_tok_s * 3600.0) * 1e6;
  p.joules_per_output_token = double(p.devices()) * d.power_w / p.decode_tok_s;
  p.joules_per_input_token = replica_devices * d.power_w / p.prefill_tok_s;

  if (!p.fits) {
    const double base = p.memory.weights + p.memory.activations + p.memory.overhead;
    if (base > p.memory.capacity) {
      p.reason = fmt::format(
          "the weights need {} per device on {} × {} (tp {} × pp {}), plus {} of activations and runtime, "
          "but one {} offers {} usable",
          gb(p.memory.weights), p.tp * p.pp, d.id, p.tp, p.pp, gb(p.memory.activations + p.memory.overhead), d.id,
          gb(p.memory.capacity));
    } else {
      p.reason = fmt::format(
          "{} sequence(s) of {} tokens need {} of KV cache per device, but only {} is left after the weights "
          "({} sequence(s) fit)",
          needed, r.context, gb(p.memory.kv_per_token * double(r.context) * double(needed)),
          gb(p.memory.capacity - base), p.max_concurrency);
    }
    if (request.suggest) add_suggestions(r, p, &p);
  }
  return p;
}

namespace {

// What would fit: more devices, a smaller weight or KV precision, a shorter context, fewer sequences.
void add_suggestions(const PlanRequest& r, const Plan& p, Plan* out) {
  auto try_plan = [&](PlanRequest q) -> std::optional<Plan> {
    q.suggest = false;
    auto res = make_plan(q);
    if (!res.is_ok() || !res->fits) return std::nullopt;
    return *res;
  };
  if (r.tp > 0 || r.pp > 0) {
    PlanRequest q = r;
    q.tp = q.pp = 0;
    if (const std::optional<Plan> m = try_plan(q)) {
      out->suggestions.push_back(fmt::format("more devices: {} × {} (tp {} × pp {})", m->tp * m->pp, r.device.id,
                                             m->tp, m->pp));
    }
  }
  for (const char* w : {"fp8", "int8", "int4-g128"}) {
    auto wp = parse_weight_precision(w);
    if (!wp.is_ok() || wp->matrix_bits(4096) >= r.weights.matrix_bits(4096)) continue;
    if (std::string(w) == "fp8" && !r.device.tflops.count("fp8")) continue;
    if (std::string(w) == "int8" && r.device.tflops.count("fp8")) continue;
    PlanRequest q = r;
    q.weights = *wp;
    q.weight_bytes_override = 0;
    if (const std::optional<Plan> m = try_plan(q)) {
      out->suggestions.push_back(fmt::format("smaller weights: {} ({} of weights) fits on {} × {}", w,
                                             gb(m->bytes.total), m->tp * m->pp, r.device.id));
      break;
    }
  }
  if (r.kv.bytes > 1) {
    PlanRequest q = r;
    q.kv = *parse_kv_precision("fp8");
    if (const std::optional<Plan> m = try_plan(q)) {
      out->suggestions.push_back(fmt::format("fp8 KV cache: fits on {} × {}", m->tp * m->pp, r.device.id));
    }
  }
  // The longest context that fits on the split this plan reached.
  const int64_t n = std::max<int64_t>(1, r.concurrency);
  const double free_kv = p.memory.capacity - p.memory.weights - p.memory.activations - p.memory.overhead;
  const int64_t max_ctx = free_kv > 0 ? int64_t(free_kv / (p.memory.kv_per_token * double(n))) : 0;
  if (max_ctx >= 1 && max_ctx < r.context) {
    out->suggestions.push_back(fmt::format("shorter context: at most {} tokens for {} sequence(s) on {} × {}", max_ctx,
                                           n, p.tp * p.pp, r.device.id));
  }
  if (r.concurrency > 1 && p.max_concurrency >= 1) {
    out->suggestions.push_back(fmt::format("fewer sequences: {} fit at {} tokens", p.max_concurrency, r.context));
  }
  if (r.tp == 0 && r.pp == 0 && out->suggestions.empty()) {
    out->suggestions.push_back(fmt::format("nothing up to {} × {} fits: a larger device", kMaxDevices, r.device.id));
  }
}

}  // namespace

}  // namespace tern::plan
