// tern plan --check: plan a checkpoint on this machine at a concurrency C, run that configuration
// through the serving engine (CpuModelRunner, a paged KV pool of the planned size, C greedy requests
// of --check-prompt + --check-new tokens in flight at once), and compare predicted with measured
// memory and speed. Memory is the growth of the process's resident set from before the load to after
// the run: the mmapped weights it touched, the KV pool and the runner's workspace. Speeds come from
// the engine's events (engine/offline_run.h): aggregate decode tokens/s of the decode phase, and the
// prompt tokens/s of the first wave's prefill.
#include <fmt/format.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>

#include "cmd_plan.h"
#include "core/median.h"
#include "plan/calibrate.h"
#include "plan/model_source.h"
#include "engine/cpu_model_runner.h"
#include "engine/engine.h"
#include "engine/offline_run.h"
#include "formats/gguf/gguf_file.h"

namespace tern::cli {

namespace {

double resident_bytes() {
  std::ifstream in("/proc/self/statm");
  double size = 0, resident = 0;
  in >> size >> resident;
  return resident * double(sysconf(_SC_PAGESIZE));
}

struct Speeds {
  double prefill = 0, decode = 0;  // tokens/s
};

// One timed pass of the closed-loop load; with cpu_time, the wall-clock phases are scaled by the
// share of the threads' time this process got (CPU seconds ÷ threads ÷ wall seconds).
Speeds time_engine(Engine& engine, const std::vector<std::vector<int32_t>>& prompts, const OfflineRunOptions& ro,
                   bool cpu_time, int threads) {
  const double cpu0 = plan::process_cpu_seconds();
  const OfflineRunStats st = unwrap(run_offline_load(engine, prompts, ro));
  const double cpu_share =
      cpu_time ? std::clamp((plan::process_cpu_seconds() - cpu0) / double(threads) / st.wall_s, 1e-3, 1.0) : 1.0;
  return {st.first_wave_prefill_tokens_per_s() / cpu_share, st.decode_tokens_per_s() / cpu_share};
}

struct Row {
  std::string what;
  double predicted, measured, bound;  // bound: allowed |error| (0: report only)
};

}  // namespace

void run_plan_check(const PlanOptions& o) {
  if (!std::filesystem::is_directory(o.model) && !is_gguf_file(o.model)) {
    fail("--check runs a checkpoint: give its directory or .gguf file, not the config file " + o.model);
  }
  Runtime rt(o.runtime);
  plan::PlanRequest r;
  const plan::ModelSource src = unwrap(plan::load_model_source(o.model));
  r.model = src.shape;
  if (!r.model.dtype_error.empty()) fail(r.model.dtype_error);
  r.weights = unwrap(plan::parse_weight_precision(o.weights.empty() ? r.model.dtype : o.weights));
  const bool as_stored = r.weights.name == unwrap(plan::parse_weight_precision(r.model.dtype)).name;
  if (!as_stored || (src.file_weight_bytes > 0 && !o.weights.empty())) {
    fail("--check runs the checkpoint as stored (" + r.model.dtype + "); drop --weights " + o.weights);
  }
  if (src.file_weight_bytes > 0) {  // a GGUF file: its tensors' real bytes
    r.weight_bytes_override = src.file_weight_bytes;
    r.weights.name = "GGUF file (" + src.file_types + ")";
  }
  const KvDType kv_dtype = o.kv_dtype;  // the engine's default, bf16, unless told otherwise
  const std::string kv_name = kv_dtype_name(kv_dtype);
  r.kv = plan::kv_precision(kv_dtype);
  if (o.device_given) {
    const plan::Catalog catalog = load_catalog(o);
    const plan::Device* d = catalog.find(o.device);
    if (!d) fail("unknown device '" + o.device + "' (known: " + catalog.ids() + ")");
    if (d->kind != "cpu") fail("--check runs on this CPU: pick a cpu device or none (calibrates now)");
    r.device = *d;
  } else {
    plan::CalibrateOptions co;
    co.bandwidth_bytes = size_t(256) << 20, co.gemv_bytes = size_t(128) << 20;
    co.cpu_time = o.cpu_time;
    const plan::Calibration c = calibrate_this_machine_with_engine(rt, co);
    r.device = c.device;
    if (!o.json) {
      std::printf("calibrated now: read %.1f GB/s, GEMV %.1f GB/s, GEMM %.1f GFLOP/s (m = 16: %.1f) (%d threads)\n",
                  c.read_gbs, c.gemv_gbs, c.gemm_gflops, c.batched_gflops, rt.pool.size());
    }
  }
  r.context = o.check_prompt + o.check_new;
  r.prompt_tokens = o.check_prompt;
  r.concurrency = std::max<int64_t>(1, o.concurrency);
  r.tp = r.pp = 1;
  r.chunk_tokens = 512;   // the engine's step token budget
  r.activation_bytes = 4;
  const plan::Plan p = unwrap(plan::make_plan(r));
  if (!p.fits) fail("the plan does not fit this machine: " + p.reason);

  const double rss0 = resident_bytes();
  auto model = unwrap(Model::load(o.model, o.runtime.load_options()));
  if (model->config().max_position_embeddings > 0 && r.context > model->config().max_position_embeddings) {
    fail(fmt::format("--check-prompt + --check-new = {} exceeds the model's context {}", r.context,
                     model->config().max_position_embeddings));
  }
  std::mt19937 rng(7);
  std::uniform_int_distribution<int32_t> id(0, int32_t(std::min<int64_t>(model->config().vocab_size, 32000) - 1));
  std::vector<std::vector<int32_t>> prompts(size_t(r.concurrency));
  for (auto& prompt : prompts)
    for (int64_t i = 0; i < o.check_prompt; ++i) prompt.push_back(id(rng));

  // The planned configuration: a pool of exactly the planned KV (whole blocks for every sequence's
  // context), C sequences at once, the planner's chunk as the step budget.
  EngineOptions eo;
  eo.kv_dtype = kv_dtype;
  eo.max_running = r.concurrency;
  eo.max_step_tokens = r.chunk_tokens;
  eo.prefix_caching = false;  // random prompts share nothing; the check measures compute, not reuse
  auto runner = std::make_unique<CpuModelRunner>(*model, rt.ctx, eo.max_step_tokens, eo.max_running);
  const int64_t blocks_per_seq = (r.context + eo.block_size - 1) / eo.block_size;
  eo.kv_memory_bytes = runner->kv_block_bytes(eo.block_size, kv_dtype) * size_t(blocks_per_seq * r.concurrency);
  auto engine = unwrap(Engine::create(std::move(runner), nullptr, eo));
  OfflineRunOptions ro;
  ro.concurrency = r.concurrency;
  ro.max_new_tokens = o.check_new;
  (void)unwrap(run_offline_load(*engine, prompts, ro));  // warm-up; memory after the first run
  const double rss1 = resident_bytes();
  // The median of the reps, as the calibration takes the median of its own: on a shared VM single
  // runs swing both ways, and the best of a few picks an outlier.
  std::vector<double> decodes, prefills;
  for (int rep = 0; rep < o.check_reps; ++rep) {
    const Speeds s = time_engine(*engine, prompts, ro, o.cpu_time, rt.pool.size());
    decodes.push_back(s.decode);
    prefills.push_back(s.prefill);
  }
  engine->shutdown(/*cancel_in_flight=*/true);
  const double decode = median(decodes), prefill = median(prefills);
  // The workspace a run holds is its largest step's: the forward's chunk buffers are sized for the step
  // budget, but their pages become resident only when a step writes them (core/scratch_vector.h), and
  // this run's largest step is its C prompts together (at most the budget).
  plan::PlanRequest held = r;
  held.chunk_tokens = std::min<int64_t>(r.chunk_tokens, r.concurrency * r.prompt_tokens);
  const plan::MemoryPerDevice m = unwrap(plan::make_plan(held)).memory;
  const double predicted_mem = m.weights + m.kv_total + m.activations;
  const std::vector<Row> rows = {
      {"memory (weights + KV + workspace), MB", predicted_mem / 1e6, (rss1 - rss0) / 1e6, 0.10},
      {fmt::format("decode tok/s (aggregate, {} in flight)", r.concurrency), p.decode_tok_s, decode, 0.25},
      {"prefill tok/s", p.prefill_tok_s, prefill, 0},
  };
  bool ok = true;
  nlohmann::json j = {{"model", o.model}, {"device", r.device.id}, {"threads", rt.pool.size()},
                      {"prompt_tokens", o.check_prompt}, {"new_tokens", o.check_new},
                      {"predicted_breakdown_bytes", {{"weights", m.weights}, {"kv", m.kv_total}, {"workspace", m.activations}}},
                      {"rows", nlohmann::json::array()}};
  j["concurrency"] = r.concurrency;
  std::string table = fmt::format("tern plan --check: {} on {} ({} threads), {} × ({} prompt + {} new tokens) through the engine\n",
                                  o.model, r.device.id, rt.pool.size(), r.concurrency, o.check_prompt, o.check_new);
  table += fmt::format("  predicted memory: weights {:.1f} MB + KV ({}) {:.1f} MB + workspace {:.1f} MB\n",
                       m.weights / 1e6, kv_name, m.kv_total / 1e6, m.activations / 1e6);
  table += fmt::format("  predicted decode step: {:.3f} ms, of which {:.3f} ms fixed costs ({})\n", p.decode_step_s * 1e3,
                       p.decode_step_fixed_s * 1e3, p.decode_memory_bound ? "memory-bound" : "compute-bound");
  table += fmt::format("  {:<40} {:>12} {:>12} {:>8} {:>8}\n", "", "predicted", "measured", "error", "bound");
  for (const Row& row : rows) {
    const double err = row.measured > 0 ? (row.predicted - row.measured) / row.measured : 0;
    const bool within = row.bound == 0 || std::fabs(err) <= row.bound;
    ok = ok && within;
    table += fmt::format("  {:<40} {:>12.2f} {:>12.2f} {:>+7.1f}% {:>8}\n", row.what, row.predicted, row.measured,
                         100 * err, row.bound > 0 ? fmt::format("{}{:.0f}%", within ? "≤" : "> ", 100 * row.bound) : "-");
    j["rows"].push_back({{"what", row.what}, {"predicted", row.predicted}, {"measured", row.measured},
                         {"error", err}, {"bound", row.bound}, {"within", within}});
  }
  j["within_bounds"] = ok;
  j["clock"] = o.cpu_time ? "cpu" : "wall";
  table += fmt::format("  measured by the {} clock\n", o.cpu_time ? "CPU-time (÷ threads)" : "wall");
  table += ok ? "  all within the error bars\n" : "  OUTSIDE the error bars\n";
  std::printf("%s", o.json ? (j.dump(2) + "\n").c_str() : table.c_str());
}

}  // namespace tern::cli
