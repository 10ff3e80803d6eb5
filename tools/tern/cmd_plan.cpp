// tern plan: what a deployment takes — memory, devices, speed, cost — from config.json arithmetic
// and the hardware catalog; --calibrate measures this machine, --check compares with a real run.
#include "cmd_plan.h"

#include <cstdio>
#include <cstdlib>
#include <filesystem>

#include "core/mapped_file.h"
#include "engine/step_overhead.h"
#include "plan/calibrate.h"
#include "plan/model_source.h"

namespace tern::cli {

plan::Catalog load_catalog(const PlanOptions& o) {
  plan::Catalog c = unwrap(plan::Catalog::shipped());
  if (!o.catalog.empty() && std::filesystem::exists(o.catalog)) {
    c.merge(unwrap(plan::Catalog::parse(unwrap(read_text_file(o.catalog)), o.catalog)));
  } else if (!o.catalog.empty() && !o.calibrate) {
    fail(o.catalog + ": no such catalog file");
  }
  return c;
}

plan::Calibration calibrate_this_machine_with_engine(Runtime& rt, const plan::CalibrateOptions& co) {
  plan::Calibration c = unwrap(plan::calibrate_this_machine(rt.ctx, co));
  std::string tmpl = (std::filesystem::temp_directory_path() / "tern-probe-XXXXXX").string();
  if (!mkdtemp(tmpl.data())) fail("cannot create a temporary directory for the step-overhead probe");
  StepOverheadOptions so;
  so.scratch_dir = tmpl;
  Result<StepOverhead> ov = measure_step_overhead(rt.ctx, so);
  std::error_code ec;
  std::filesystem::remove_all(tmpl, ec);
  const StepOverhead o = unwrap(std::move(ov));
  c.device.step_overhead_us = o.step_us;
  c.device.layer_overhead_us = o.layer_us;
  c.device.sequence_overhead_us = o.sequence_us;
  c.device.sequence_layer_overhead_us = o.sequence_layer_us;
  c.device.attention_kv_gbs = o.attention_kv_gbs;
  std::fprintf(stderr, "[tern] step-overhead probes (layers x sequences): 1x1 %.0f us, 9x1 %.0f us, 1x16 %.0f us, "
               "9x16 %.0f us, 9x16 at 400 tokens of context %.0f us (attention reads KV at %.1f GB/s)\n",
               o.probe_us[0], o.probe_us[1], o.probe_us[2], o.probe_us[3], o.probe_us[4], o.attention_kv_gbs);
  return c;
}

namespace {

void calibrate(const PlanOptions& o) {
  Runtime rt(o.runtime);
  std::fprintf(stderr, "[tern] calibrating this machine with %d threads (bandwidth, GEMV, GEMM)...\n", rt.pool.size());
  plan::CalibrateOptions co;
  co.cpu_time = o.cpu_time;
  const plan::Calibration c = calibrate_this_machine_with_engine(rt, co);
  std::fprintf(stderr, "[tern] read %.1f GB/s, bf16 GEMV %.1f GB/s (%.0f%%), bf16 GEMM %.1f GFLOP/s (m = 16: %.1f)\n",
               c.read_gbs, c.gemv_gbs, 100 * c.gemv_gbs / c.read_gbs, c.gemm_gflops, c.batched_gflops);
  const plan::Device& d = c.device;
  std::fprintf(stderr, "[tern] decode step overhead: %.0f us + %.1f us/layer + %.1f us/sequence + %.2f us/(sequence x "
               "layer) + %.1f us/matmul call (512 x 512 GEMV: %.1f GB/s; dispatch %.1f us)\n", d.step_overhead_us,
               d.layer_overhead_us, d.sequence_overhead_us, d.sequence_layer_overhead_us, d.matmul_call_us,
               c.small_gemv_gbs, c.matmul_dispatch_us);
  if (o.catalog.empty()) {
    std::printf("%s\n", plan::device_to_json(c.device).c_str());
    return;
  }
  check(plan::save_device(o.catalog, c.device));
  std::fprintf(stderr, "[tern] wrote device '%s' to %s\n", c.device.id.c_str(), o.catalog.c_str());
}

void list_devices(const PlanOptions& o) {
  const plan::Catalog c = load_catalog(o);
  for (const auto& d : c.devices()) {
    std::printf("%-16s %-4s %8.1f GiB %8.0f GB/s %8.1f TFLOP/s bf16  $%.2f/h  %s\n", d.id.c_str(), d.kind.c_str(),
                d.memory_gib, d.bandwidth_gbs, d.flops("bf16") / 1e12, d.price_per_hour, d.name.c_str());
  }
}

void plan_once(const PlanOptions& o) {
  plan::PlanRequest r;
  const plan::ModelSource src = unwrap(plan::load_model_source(o.model));
  r.model = src.shape;
  if (o.weights.empty() && !r.model.dtype_error.empty()) fail(r.model.dtype_error);
  r.weights = unwrap(plan::parse_weight_precision(o.weights.empty() ? r.model.dtype : o.weights));
  if (src.file_weight_bytes > 0 && o.weights.empty()) {
    // A GGUF file is priced as stored: its tensors' real bytes, its types named.
    r.weight_bytes_override = src.file_weight_bytes;
    r.weights.name = "GGUF file (" + src.file_types + ")";
  }
  r.kv = plan::kv_precision(o.kv_dtype);
  const plan::Catalog catalog = load_catalog(o);
  const plan::Device* d = catalog.find(o.device);
  if (!d) {
    fail("unknown device '" + o.device + "' (known: " + catalog.ids() +
         "; measure this machine with tern plan --calibrate --catalog FILE)");
  }
  r.device = *d;
  r.context = o.context;
  r.prompt_tokens = o.prompt_len;
  r.concurrency = o.concurrency;
  r.target_output_tok_s = o.target_tok_s;
  r.tp = o.tp, r.pp = o.pp;
  if (o.link_gbps > 0) r.device.interconnect_gbs = o.link_gbps / 8;  // Gbit/s → GB/s
  if (o.link_latency_given) r.device.interconnect_latency_us = o.link_latency_us;
  if (o.devices > 0) return run_plan_layouts(o, r);
  const plan::Plan p = unwrap(plan::make_plan(r));
  const std::string out = o.json ? plan::plan_to_json(r, p) : plan::plan_to_table(r, p);
  std::printf("%s\n", out.c_str());
}

}  // namespace

void register_plan(CLI::App& app) {
  auto o = std::make_shared<PlanOptions>();
  CLI::App* cmd = app.add_subcommand("plan", "memory, devices, speed and cost of a deployment (and check it here)");
  add_model_option(*cmd, o->model, ModelOptionKind::kPlanSource);
  cmd->add_option("-w,--weights", o->weights,
                  "weight precision: bf16, fp16, f32, fp8, int8, int4-gN, or a GGUF type (Q4_K, Q8_0, ...); "
                  "default: the checkpoint's");
  add_kv_dtype_option(*cmd, o->kv_dtype);
  cmd->add_option("--ctx,--context", o->context, "tokens per sequence (default: the model's maximum)")
      ->check(CLI::Range(int64_t(1), int64_t(1) << 30));
  cmd->add_option("--prompt-len", o->prompt_len, "average prompt tokens (default: half the context)")
      ->check(CLI::Range(int64_t(1), int64_t(1) << 30));
  auto* conc = cmd->add_option("-c,--concurrency", o->concurrency, "sequences in flight (default: the most that fit)")
                   ->check(CLI::Range(int64_t(1), int64_t(1) << 30));
  cmd->add_option("--target-tok-s", o->target_tok_s, "aggregate output tokens/s wanted (instead of --concurrency)")
      ->check(CLI::PositiveNumber)
      ->excludes(conc);
  cmd->add_option("--tp", o->tp, "tensor-parallel degree (default: the smallest that fits)")->check(CLI::Range(1, 1024));
  cmd->add_option("--pp", o->pp, "pipeline-parallel degree (default: the smallest that fits)")->check(CLI::Range(1, 1024));
  auto* dev = cmd->add_option("-d,--device", o->device, "device id from the catalog (see --list-devices)");
  cmd->add_option("--catalog", o->catalog, "your catalog file, merged over the shipped one (--calibrate writes it)");
  cmd->add_flag("--json", o->json, "machine-readable output");
  cmd->add_flag("--list-devices", o->list_devices, "print the catalog");
  cmd->add_flag("--calibrate", o->calibrate, "measure this machine (into --catalog FILE as 'this-machine', else print it)");
  cmd->add_flag("--check", o->check, "run the planned configuration here and print predicted vs measured");
  cmd->add_option("--check-prompt", o->check_prompt, "--check: prompt tokens")->check(CLI::Range(int64_t(1), int64_t(1) << 20));
  cmd->add_option("--check-new", o->check_new, "--check: generated tokens")->check(CLI::Range(int64_t(2), int64_t(1) << 20));
  cmd->add_option("--check-reps", o->check_reps, "--check: timed runs after the warm-up (the median counts)")->check(CLI::Range(1, 100));
  cmd->add_flag("--cpu-time", o->cpu_time,
                "--check/--calibrate: time by this process's CPU time ÷ threads (on a machine shared with busy processes)");
  auto* devices = cmd->add_option("--devices", o->devices,
                                  "price every TP × PP × EP layout of N devices over the link (--link-gbps, --link-latency-us)")
                      ->check(CLI::Range(1, 4096));
  cmd->add_option("--link-gbps", o->link_gbps, "the link between devices, Gbit/s per direction (default: the device's interconnect)")
      ->check(CLI::PositiveNumber);
  auto* lat = cmd->add_option("--link-latency-us", o->link_latency_us,
                              "one-way time of a short message on the link, µs (bench_link measures it)")
                  ->check(CLI::NonNegativeNumber);
  auto* burst = cmd->add_option("--link-burst-bytes", o->link_burst_bytes,
                                "a shaped link's bucket (tc tbf burst): the bytes of a message that leave at once (default 0: a wire)")
                    ->check(CLI::NonNegativeNumber);
  auto* added = cmd->add_option("--added-latency-us", o->added_latency_us, "--devices: also price these µs more per message (default 50 200)")
      ->check(CLI::NonNegativeNumber)
      ->delimiter(',');
  auto* tp_comm = cmd->add_option("--tp-comm", o->tp_comm, "--devices: the TP all-reduce's element (f32, bf16, int8)")
      ->check(CLI::IsMember({"f32", "bf16", "int8"}));
  auto* link_fits = cmd->add_option("--link-fits", o->link_fits,
                                    "--devices: price the link with bench_link's fits (its output, or bench/netns_tp.sh's "
                                    "results.jsonl; --link-gbps picks a rate there): α at each call's compute gap + β × bytes");
  cmd->add_option("--measured", o->measured,
                  "--check: compare the predicted communication per token with these runs (bench/netns_tp.sh's results.jsonl)");
  o->runtime.add_to(*cmd);
  cmd->callback([o, dev, devices, lat, added, tp_comm, burst, link_fits] {
    o->link_latency_given = lat->count() > 0;
    o->link_burst_given = burst->count() > 0;
    if (devices->count() == 0 && (added->count() > 0 || tp_comm->count() > 0 || link_fits->count() > 0)) {
      fail(std::string(added->count() > 0 ? "--added-latency-us" : tp_comm->count() > 0 ? "--tp-comm" : "--link-fits") +
           " prices layouts: give --devices N");
    }
    if (o->check && o->measured.empty() && devices->count() > 0) {
      fail("--check runs one process here; --devices goes with --check --measured FILE or without --check");
    }
    if (!o->measured.empty() && !o->check) fail("--measured goes with --check");
    if (o->check && !o->measured.empty()) {
      if (o->model.empty()) fail("give the model with -m CONFIG_OR_DIR (its shape prices the communication)");
      return run_plan_comm_check(*o);
    }
    o->device_given = dev->count() > 0;
    if (o->list_devices) return list_devices(*o);
    if (o->calibrate) return calibrate(*o);
    if (o->model.empty()) fail("give a model with -m CONFIG_OR_DIR (or --calibrate / --list-devices)");
    if (o->check) return run_plan_check(*o);
    plan_once(*o);
  });
}

}  // namespace tern::cli
