// tern plan: shared between the planning command and its --check (measure on this machine).
#pragma once

#include <string>
#include <vector>

#include "cli_common.h"
#include "plan/calibrate.h"
#include "plan/planner.h"

namespace tern::cli {

struct PlanOptions {
  RuntimeOptions runtime;
  std::string model;
  std::string weights;   // "" = the checkpoint's dtype
  KvDType kv_dtype = KvDType::BF16;  // the serving engine's default
  int64_t context = 0;
  int64_t prompt_len = 0;
  int64_t concurrency = 0;
  double target_tok_s = 0;
  int tp = 0, pp = 0;
  std::string device = "h100-sxm";
  bool device_given = false;
  std::string catalog;   // user catalog file merged over the shipped one
  bool json = false;
  bool list_devices = false;
  bool calibrate = false;
  bool check = false;
  int64_t check_prompt = 128;
  int64_t check_new = 128;
  int check_reps = 1;
  bool cpu_time = false;  // --check: time by CPU time ÷ threads (a machine shared with busy processes)
  // The link between devices (issue 17): --devices N prices every TP × PP × EP layout of N devices.
  int devices = 0;
  double link_gbps = 0, link_latency_us = 0;
  bool link_latency_given = false;
  double link_burst_bytes = 0;  // a token-bucket shaper's bucket (tc tbf burst); 0: a wire
  bool link_burst_given = false;
  std::vector<double> added_latency_us = {50, 200};
  std::string tp_comm = "f32";  // the all-reduce's element: f32, bf16, int8 (+ an f32 scale per row)
  std::string measured;  // --check --measured FILE: compare communication with bench/netns_tp.sh's runs
  std::string link_fits;  // --devices N --link-fits FILE: price the link with bench_link's fits
};

// The shipped catalog with --catalog merged over it.
plan::Catalog load_catalog(const PlanOptions& o);
// Measures this machine as the device "this-machine": plan::calibrate_this_machine plus the
// engine's fixed cost per decode step (engine/step_overhead.h), probed in a temporary directory.
plan::Calibration calibrate_this_machine_with_engine(Runtime& rt, const plan::CalibrateOptions& co);
// Runs the check: plan this checkpoint on this machine, generate, compare. Prints the table (or JSON).
void run_plan_check(const PlanOptions& o);
// --devices N: the layouts of N devices over the link, priced (cmd_plan_layouts.cpp).
void run_plan_layouts(const PlanOptions& o, const plan::PlanRequest& base);
// --check --measured FILE: predicted vs measured communication per token (cmd_plan_layouts.cpp).
void run_plan_comm_check(const PlanOptions& o);

}  // namespace tern::cli
