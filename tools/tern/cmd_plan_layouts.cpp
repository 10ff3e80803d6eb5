// tern plan --devices N: every TP × PP × EP layout of N devices over a link, priced (plan/layouts.h);
// tern plan --check --measured FILE: the predicted communication per token next to the runs over the
// shaped link between two network namespaces (bench/netns_tp.sh, plan/comm_check.h).
#include <fmt/format.h>

#include <filesystem>
#include <nlohmann/json.hpp>

#include "cmd_plan.h"
#include "core/mapped_file.h"
#include "plan/comm_check.h"
#include "plan/layouts.h"
#include "plan/model_source.h"

namespace tern::cli {

void run_plan_layouts(const PlanOptions& o, const plan::PlanRequest& base) {
  plan::LayoutRequest r;
  r.base = base;
  r.devices = o.devices;
  r.link = {o.link_gbps > 0 ? o.link_gbps : base.device.interconnect_gbs * 8,
            o.link_latency_given ? o.link_latency_us : base.device.interconnect_latency_us, o.link_burst_bytes};
  r.added_latency_us = o.added_latency_us;
  const double hidden = double(base.model.hidden);
  r.tp_bytes_per_element = o.tp_comm == "bf16" ? 2 : o.tp_comm == "int8" ? 1.0 + 4.0 / hidden : 0;
  const plan::LayoutChoice c = unwrap(plan::plan_layouts(r));
  const std::string out = o.json ? plan::layouts_to_json(r, c) : plan::layouts_to_table(r, c);
  std::printf("%s\n", out.c_str());
}

void run_plan_comm_check(const PlanOptions& o) {
  const plan::ModelSource src = unwrap(plan::load_model_source(o.model));
  const plan::ModelShape& s = src.shape;
  const std::string name = std::filesystem::path(o.model).filename().string();
  const std::string text = unwrap(read_text_file(o.measured));
  const auto runs = unwrap(plan::parse_comm_measurements(text, o.measured, std::filesystem::is_directory(o.model) ? name : ""));
  nlohmann::ordered_json j = {{"model", o.model}, {"measured", o.measured}, {"runs", nlohmann::ordered_json::array()}};
  std::string table = fmt::format("tern plan --check: communication per decode token of {} (batch 1), predicted vs {}\n",
                                  o.model, o.measured);
  table += fmt::format("  {:<8} {:<9} {:>7} {:>7} {:<44} {:>12} {:>12} {:>8} {:>6} {:>5}\n", "rate", "layout", "Gbit/s",
                       "lat us", "", "predicted", "measured", "error", "bound", "load");
  bool ok = true;
  for (const plan::CommMeasurement& m : runs) {
    const plan::MeasuredLayout ml = unwrap(plan::measured_layout(m, s.hidden));
    double gbps = o.link_gbps;
    if (gbps <= 0) {
      auto r = plan::parse_rate_gbps(m.rate);
      if (!r.is_ok()) continue;  // a run without a shaped link (shared memory) and no --link-gbps: nothing to price
      gbps = *r;
    }
    const double lat = o.link_latency_given ? o.link_latency_us : m.link_latency_us;
    if (!o.link_latency_given && m.link_latency_us <= 0) {
      fail(o.measured + ": no bench_link latency for rate '" + m.rate + "': give --link-latency-us");
    }
    const plan::Link link{gbps, lat, o.link_burst_given ? o.link_burst_bytes : m.link_burst_bytes};
    nlohmann::ordered_json jr = {{"rate", m.rate}, {"layout", ml.layout.name()}, {"link_gbps", gbps}, {"latency_us", lat}, {"burst_bytes", link.burst_bytes},
                                 {"load", m.load}, {"decode_tok_s", m.decode_tok_s}, {"rows", nlohmann::ordered_json::array()}};
    for (const plan::CommCheckRow& row : plan::check_comm(s, m, ml, link)) {
      ok = ok && row.within();
      table += fmt::format("  {:<8} {:<9} {:>7.3g} {:>7.1f} {:<44} {:>9.3f} ms {:>9.3f} ms {:>+7.1f}% {:>6} {:>5}\n", m.rate,
                           ml.layout.name(), gbps, lat, row.what, row.predicted_s * 1e3, row.measured_s * 1e3,
                           100 * row.error(),
                           row.bound > 0 ? fmt::format("{}{:.0f}%", row.within() ? "≤" : "> ", 100 * row.bound) : "-",
                           m.load >= 0 ? fmt::format("{:.2f}", m.load) : "-");
      jr["rows"].push_back({{"what", row.what}, {"predicted_s", row.predicted_s}, {"measured_s", row.measured_s},
                            {"error", row.error()}, {"bound", row.bound}, {"within", row.within()}});
    }
    j["runs"].push_back(jr);
  }
  if (j["runs"].empty()) fail(o.measured + ": no run over a shaped link (rates NNgbit) for " + o.model + "; or give --link-gbps");
  j["within_bounds"] = ok;
  table += ok ? "  all within the error bars\n" : "  OUTSIDE the error bars\n";
  table += "  (load: the 1-minute load average during the run; above ~1.5 on this 2-core machine the figures measure the other processes)\n";
  std::printf("%s", o.json ? (j.dump(2) + "\n").c_str() : table.c_str());
}

}  // namespace tern::cli
