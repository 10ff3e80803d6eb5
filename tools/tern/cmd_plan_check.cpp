// tern plan --check: plan a checkpoint on this machine, run it (single-sequence greedy decode
// through the Generator, f32 KV cache), and compare predicted with measured memory and speed.
// Memory is measured as the growth of the process's resident set from before the load to after
// the generation: the mmapped weights it touched, the KV cache and the decoder's workspace.
#include <fmt/format.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>

#include "cmd_plan.h"
#include "plan/calibrate.h"
#include "runtime/generator.h"

namespace tern::cli {

namespace {

double resident_bytes() {
  std::ifstream in("/proc/self/statm");
  double size = 0, resident = 0;
  in >> size >> resident;
  return resident * double(sysconf(_SC_PAGESIZE));
}

struct Row {
  std::string what;
  double predicted, measured, bound;  // bound: allowed |error| (0: report only)
};

}  // namespace

void run_plan_check(const PlanOptions& o) {
  Runtime rt(o.runtime);
  plan::PlanRequest r;
  r.model = unwrap(plan::load_model_shape(o.model));
  r.weights = unwrap(plan::parse_weight_precision(o.weights.empty() ? r.model.dtype : o.weights));
  if (r.weights.name != unwrap(plan::parse_weight_precision(r.model.dtype)).name) {
    fail("--check runs the checkpoint as stored (" + r.model.dtype + "); drop --weights " + o.weights);
  }
  r.kv = unwrap(plan::parse_kv_precision("f32"));  // what the single-sequence generator caches
  if (o.device_given) {
    const plan::Catalog catalog = load_catalog(o);
    const plan::Device* d = catalog.find(o.device);
    if (!d) fail("unknown device '" + o.device + "' (known: " + catalog.ids() + ")");
    if (d->kind != "cpu") fail("--check runs on this CPU: pick a cpu device or none (calibrates now)");
    r.device = *d;
  } else {
    plan::CalibrateOptions co;
    co.bandwidth_bytes = size_t(256) << 20, co.gemv_bytes = size_t(128) << 20;
    const plan::Calibration c = unwrap(plan::calibrate_this_machine(rt.ctx, co));
    r.device = c.device;
    if (!o.json) {
      std::printf("calibrated now: read %.1f GB/s, GEMV %.1f GB/s, GEMM %.1f GFLOP/s (%d threads)\n", c.read_gbs,
                  c.gemv_gbs, c.gemm_gflops, rt.pool.size());
    }
  }
  r.context = o.check_prompt + o.check_new;
  r.prompt_tokens = o.check_prompt;
  r.concurrency = 1;
  r.tp = r.pp = 1;
  r.chunk_tokens = 512;   // the Generator's decoder chunk
  r.activation_bytes = 4;
  const plan::Plan p = unwrap(plan::make_plan(r));
  if (!p.fits) fail("the plan does not fit this machine: " + p.reason);

  const double rss0 = resident_bytes();
  auto model = unwrap(Model::load(o.model));
  if (model->config().max_position_embeddings > 0 && r.context > model->config().max_position_embeddings) {
    fail(fmt::format("--check-prompt + --check-new = {} exceeds the model's context {}", r.context,
                     model->config().max_position_embeddings));
  }
  GenerationRequest req;
  std::mt19937 rng(7);
  std::uniform_int_distribution<int32_t> id(0, int32_t(std::min<int64_t>(model->config().vocab_size, 32000) - 1));
  for (int64_t i = 0; i < o.check_prompt; ++i) req.prompt.push_back(id(rng));
  req.max_new_tokens = o.check_new;
  req.ignore_eos = true;
  req.sampling.temperature = 0;
  Generator gen(*model, nullptr, rt.ctx);
  GenerationResult res = unwrap(gen.generate(req, nullptr));
  const double rss1 = resident_bytes();
  // Speed: the best of the runs (the calibration is a best-of too; a shared machine only slows down).
  double decode = 0, prefill = 0;
  for (int rep = 0; rep < o.check_reps; ++rep) {
    if (rep > 0) res = unwrap(gen.generate(req, nullptr));
    const double n_dec = double(res.tokens.size()) - 1;
    if (res.decode_seconds > 0) decode = std::max(decode, n_dec / res.decode_seconds);
    prefill = std::max(prefill, double(req.prompt.size()) / res.prefill_seconds);
  }
  const plan::MemoryPerDevice& m = p.memory;
  const double predicted_mem = m.weights + m.kv_total + m.activations;
  const std::vector<Row> rows = {
      {"memory (weights + KV + workspace), MB", predicted_mem / 1e6, (rss1 - rss0) / 1e6, 0.10},
      {"decode tok/s (batch 1)", p.decode_tok_s_per_seq, decode, 0.25},
      {"prefill tok/s", p.prefill_tok_s, prefill, 0},
  };
  bool ok = true;
  nlohmann::json j = {{"model", o.model}, {"device", r.device.id}, {"threads", rt.pool.size()},
                      {"prompt_tokens", o.check_prompt}, {"new_tokens", o.check_new},
                      {"predicted_breakdown_bytes", {{"weights", m.weights}, {"kv", m.kv_total}, {"workspace", m.activations}}},
                      {"rows", nlohmann::json::array()}};
  std::string table = fmt::format("tern plan --check: {} on {} ({} threads), {} prompt + {} new tokens\n", o.model,
                                  r.device.id, rt.pool.size(), o.check_prompt, o.check_new);
  table += fmt::format("  predicted memory: weights {:.1f} MB + KV (f32) {:.1f} MB + workspace {:.1f} MB\n",
                       m.weights / 1e6, m.kv_total / 1e6, m.activations / 1e6);
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
  table += ok ? "  all within the error bars\n" : "  OUTSIDE the error bars\n";
  std::printf("%s", o.json ? (j.dump(2) + "\n").c_str() : table.c_str());
}

}  // namespace tern::cli
