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
#include "runtime/sampler.h"

namespace tern::cli {

namespace {

double resident_bytes() {
  std::ifstream in("/proc/self/statm");
  double size = 0, resident = 0;
  in >> size >> resident;
  return resident * double(sysconf(_SC_PAGESIZE));
}

struct Speeds {
  double prefill = 0, decode = 0;  // tokens/s, best of the reps
};

// The generator's loop without sampling (greedy argmax), timed by both clocks at once: prefill of
// the prompt, then n_new single-token steps. Returns {wall, cpu-time} speeds, best of the reps.
std::pair<Speeds, Speeds> time_decoder(const Model& model, ExecContext& ctx, const std::vector<int32_t>& prompt,
                                       int64_t n_new, int reps, KvDType kv_dtype) {
  const ModelConfig& c = model.config();
  Decoder dec(model);
  std::vector<float> hidden(size_t(c.hidden_size)), logits(size_t(c.vocab_size));
  Speeds wall, cpu;
  const int threads = ctx.threads();
  for (int r = 0; r < reps; ++r) {
    SequenceKvCache kv(c, int64_t(prompt.size()) + n_new, kv_dtype);
    plan::Stopwatch pw(false, threads), pc(true, threads);
    check(dec.forward(ctx, kv, prompt.data(), int64_t(prompt.size()), 1, hidden.data()));
    dec.logits(ctx, hidden.data(), 1, logits.data());
    int32_t next = argmax(logits.data(), c.vocab_size);
    wall.prefill = std::max(wall.prefill, double(prompt.size()) / pw.seconds());
    cpu.prefill = std::max(cpu.prefill, double(prompt.size()) / pc.seconds());
    plan::Stopwatch dw(false, threads), dc(true, threads);
    for (int64_t i = 0; i < n_new; ++i) {
      check(dec.forward(ctx, kv, &next, 1, 1, hidden.data()));
      dec.logits(ctx, hidden.data(), 1, logits.data());
      next = argmax(logits.data(), c.vocab_size);
    }
    wall.decode = std::max(wall.decode, double(n_new) / dw.seconds());
    cpu.decode = std::max(cpu.decode, double(n_new) / dc.seconds());
  }
  return {wall, cpu};
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
  // The single-sequence generator caches f32 unless told otherwise.
  const std::string kv_name = o.kv_given ? o.kv_dtype : "f32";
  r.kv = unwrap(plan::parse_kv_precision(kv_name));
  const KvDType kv_dtype = unwrap(parse_kv_dtype(kv_name));
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
  req.kv_dtype = kv_dtype;
  Generator gen(*model, nullptr, rt.ctx);
  (void)unwrap(gen.generate(req, nullptr));  // memory: the path `tern run` takes
  const double rss1 = resident_bytes();
  const auto [wall, cpu] = time_decoder(*model, rt.ctx, req.prompt, o.check_new, o.check_reps, kv_dtype);
  const double decode = o.cpu_time ? cpu.decode : wall.decode, prefill = o.cpu_time ? cpu.prefill : wall.prefill;
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
  table += fmt::format("  predicted memory: weights {:.1f} MB + KV ({}) {:.1f} MB + workspace {:.1f} MB\n",
                       m.weights / 1e6, kv_name, m.kv_total / 1e6, m.activations / 1e6);
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
  j["measured_wall"] = {{"decode_tok_s", wall.decode}, {"prefill_tok_s", wall.prefill}};
  j["measured_cpu"] = {{"decode_tok_s", cpu.decode}, {"prefill_tok_s", cpu.prefill}};
  table += fmt::format("  measured by the {} clock; the other: decode {:.2f}, prefill {:.2f} tok/s\n",
                       o.cpu_time ? "CPU-time" : "wall", o.cpu_time ? wall.decode : cpu.decode,
                       o.cpu_time ? wall.prefill : cpu.prefill);
  table += ok ? "  all within the error bars\n" : "  OUTSIDE the error bars\n";
  std::printf("%s", o.json ? (j.dump(2) + "\n").c_str() : table.c_str());
}

}  // namespace tern::cli
