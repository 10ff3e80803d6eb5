// The planner: for a model at a precision, a context and a load on a device, how much memory it
// takes (weights, KV cache, activations, runtime), how many devices and how they are split,
// how many sequences fit, how fast prefill and decode run (roofline with the catalog's
// efficiencies), and what a million tokens cost in dollars and joules. When it does not fit,
// why, and what would.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/status.h"
#include "plan/hardware.h"
#include "plan/model_shape.h"
#include "plan/params.h"
#include "plan/precision.h"

namespace tern::plan {

struct PlanRequest {
  ModelShape model;
  WeightPrecision weights;
  KvPrecision kv;
  Device device;
  int64_t context = 0;        // tokens per sequence the KV cache is sized for; 0 = the model's maximum
  int64_t prompt_tokens = 0;  // average prompt (prefill speed, decode KV reads); 0 = context / 2
  int64_t concurrency = 0;    // sequences in flight; 0 = the largest that fits
  double target_output_tok_s = 0;  // instead of a concurrency: aggregate decode tokens/s wanted
  int tp = 0, pp = 0;         // 0 = choose the smallest split that fits
  int64_t chunk_tokens = 0;   // prefill chunk (activations workspace); 0 = 2048 on GPUs, 512 on CPUs
  double activation_bytes = 0;  // per activation element; 0 = 2 on GPUs (bf16), 4 on CPUs (f32)
  double weight_bytes_override = 0;  // > 0: the checkpoint's measured bytes instead of the arithmetic
  bool suggest = true;        // when it does not fit, look for what would (more plans)
};

struct MemoryPerDevice {
  double weights = 0;
  double kv_per_token = 0;     // this device's share of one token's KV
  double kv_total = 0;         // at the planned concurrency × context
  double activations = 0;      // workspace of one prefill chunk + logits
  double overhead = 0;         // runtime (catalog)
  double used() const { return weights + kv_total + activations + overhead; }
  double capacity = 0;         // usable bytes of the device
};

struct Plan {
  bool fits = false;
  std::string reason;                 // why not, when !fits
  std::vector<std::string> suggestions;  // what would fit

  ParamCounts params;
  WeightBytes bytes;                  // whole model at the precision
  double kv_bytes_per_token = 0;      // whole model, all layers
  int64_t context = 0, prompt_tokens = 0;
  int tp = 1, pp = 1, replicas = 1;
  int devices() const { return tp * pp * replicas; }
  MemoryPerDevice memory;
  int64_t max_concurrency = 0;        // per replica, at this context
  int64_t concurrency = 0;            // planned, per replica

  double prefill_tok_s = 0;           // one replica, long prompts
  double decode_tok_s_per_seq = 0;    // at the planned concurrency
  double decode_tok_s = 0;            // aggregate over all replicas
  double decode_step_s = 0;
  double decode_step_fixed_s = 0;     // of which fixed costs (dispatch, bookkeeping, short-call ramps)
  bool decode_memory_bound = true;
  double cost_per_m_input = 0, cost_per_m_output = 0;       // $
  double joules_per_input_token = 0, joules_per_output_token = 0;
};

// Input errors (a TP degree that does not divide the heads, an empty device) are errors;
// a configuration that does not fit is a Plan with fits = false and the reason.
Result<Plan> make_plan(const PlanRequest& request);

// Decode step time of one replica for `batch` sequences whose average cached length is `avg_tokens`.
struct DecodeStep {
  double seconds = 0;
  bool memory_bound = true;
  double fixed_seconds = 0;  // of which the device's fixed per-step costs (Device::decode_step_overhead_s)
};
DecodeStep decode_step(const PlanRequest& r, const WeightBytes& b, double kv_bytes_per_token_device, int tp, int pp,
                       int64_t batch, double avg_tokens);

// One device's weights under tp × pp × ep (weights_total: the whole model, measured or arithmetic):
// what tensor parallelism cuts ÷ tp plus what every rank holds whole; under pp the largest stage of
// the engine's own split by bytes (pp_split_layers: the split of the whole layers, every expert
// counted, whatever ep), the first stage holding the embedding table; under ep (MoE) each rank of a
// stage holds 1/ep of the stage's routed experts (each cut tp ways), the rest as under tp alone.
double weights_per_device(const PlanRequest& r, const WeightBytes& b, double weights_total, int tp, int pp,
                          int ep = 1);

std::string plan_to_json(const PlanRequest& request, const Plan& plan);  // pretty JSON
std::string plan_to_table(const PlanRequest& request, const Plan& plan);  // what a person reads

}  // namespace tern::plan
