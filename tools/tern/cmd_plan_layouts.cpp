// tern plan --devices N: every TP × PP × EP layout of N devices over a link, priced (plan/layouts.h);
// tern plan --check --measured FILE: the predicted communication per token next to the runs over the
// shaped link between two network namespaces (bench/netns_tp.sh, plan/comm_check.h).
#include <fmt/format.h>

#include <algorithm>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "cmd_plan.h"
#include "core/mapped_file.h"
#include "plan/comm_check.h"
#include "plan/layouts.h"
#include "plan/link_fits_file.h"
#include "plan/model_source.h"

namespace tern::cli {

void run_plan_layouts(const PlanOptions& o, const plan::PlanRequest& base) {
  plan::LayoutRequest r;
  r.base = base;
  r.devices = o.devices;
  r.link = {o.link_gbps > 0 ? o.link_gbps : base.device.interconnect_gbs * 8,
            o.link_latency_given ? o.link_latency_us : base.device.interconnect_latency_us, o.link_burst_bytes};
  if (!o.link_fits.empty()) {
    // bench_link's fits price every kind of call they hold; the rate and latency stay the fallback.
    const std::string text = unwrap(read_text_file(o.link_fits));
    r.link.fits = unwrap(plan::parse_link_fits(text, o.link_fits, o.link_gbps));
    r.link_fits_source = o.link_fits;
  }
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
  table += fmt::format("  {:<7} {:<9} {:<7} {:<38} {:>12} {:>12} {:>8} {:>6} {:>8} {:>10} {:>10} {:>5}\n", "rate", "layout",
                       "priced", "", "predicted", "measured", "error", "bound", "gap us", "+50us/msg", "+200us/msg", "load");
  bool ok = true;
  std::string fits_seen;
  for (const plan::CommMeasurement& m : runs) {
    const plan::MeasuredLayout ml = unwrap(plan::measured_layout(m, s.hidden));
    double gbps = o.link_gbps;
    if (gbps <= 0) {
      auto r = plan::parse_rate_gbps(m.rate);
      if (!r.is_ok()) continue;  // a run without a shaped link (shared memory) and no --link-gbps: nothing to price
      gbps = *r;
    }
    // bench_link's fits price the link unless the rate / latency are given on the command line.
    const bool use_fits = !o.link_latency_given && o.link_gbps <= 0 && !o.link_burst_given;
    const double lat = o.link_latency_given ? o.link_latency_us : m.link_latency_us;
    if (!o.link_latency_given && m.link_latency_us <= 0 && !use_fits) {
      fail(o.measured + ": no bench_link latency for rate '" + m.rate + "': give --link-latency-us");
    }
    plan::Link link{gbps, lat, o.link_burst_given ? o.link_burst_bytes : m.link_burst_bytes};
    if (use_fits) link.fits = m.link_fits;
    if (use_fits && fits_seen.find(m.rate + ":") == std::string::npos) {
      fits_seen += m.rate + ":";
      for (int k = 0; k < plan::kCallKinds; ++k) {
        for (const plan::RangedFit& r : m.link_fits.kind[k]) {
          const plan::LinkFit& f = r.fit;
          table += fmt::format("  link {:<7} {:<10} {:>7.0f} .. {:<7.0f} B: α {:>7.1f} us  β {:>7.3f} ns/byte ({:.2f} Gbit/s)  fit within {:.0f}%\n",
                               m.rate, plan::call_kind_name(plan::CallKind(k)), r.min_bytes, std::min(r.max_bytes, 1e15),
                               f.alpha_s * 1e6, f.beta_s_per_byte * 1e9, f.beta_s_per_byte > 0 ? 8e-9 / f.beta_s_per_byte : 0.0,
                               100 * f.max_rel_residual);
        }
        for (const plan::RangedGapFit& g : m.link_fits.gap[k]) {
          std::string pts;
          for (const plan::GapPoint& p : g.alpha.points) pts += fmt::format(" {:.0f}:{:.1f}", p.gap_s * 1e6, p.alpha_s * 1e6);
          table += fmt::format("  link {:<7} {:<10} {:>7.0f} .. {:<7.0f} B: α(gap) = {:.1f} + {:.1f} × (1 − e^(−gap/{:.0f} us)) us, "
                               "β {:.3f} ns/byte, fit within {:.0f}% (gap us:α us{})\n",
                               m.rate, plan::call_kind_name(plan::CallKind(k)), g.min_bytes, std::min(g.max_bytes, 1e15),
                               g.alpha.alpha0_s * 1e6, g.alpha.wake_s * 1e6, g.alpha.tau_s * 1e6, g.beta_s_per_byte * 1e9,
                               100 * g.alpha.max_rel_residual, pts);
        }
      }
    }
    nlohmann::ordered_json jr = {{"rate", m.rate}, {"kind", m.kind}, {"layout", m.layout}, {"link_gbps", gbps}, {"latency_us", lat},
                                 {"burst_bytes", link.burst_bytes}, {"load", m.load}, {"decode_tok_s", m.decode_tok_s},
                                 {"rows", nlohmann::ordered_json::array()}};
    plan::Link far50 = link, far200 = link;
    far50.added_latency_us += 50, far200.added_latency_us += 200;
    const auto rows = plan::check_comm(s, m, ml, link);
    const auto rows50 = plan::check_comm(s, m, ml, far50), rows200 = plan::check_comm(s, m, ml, far200);
    for (size_t i = 0; i < rows.size(); ++i) {
      const plan::CommCheckRow& row = rows[i];
      ok = ok && row.within();
      const std::string layout = m.layout.empty() ? ml.layout.name() : m.layout;
      const char* priced = !link.fits.has(plan::CallKind::AllReduce) ? "rate"
                           : link.fits.has_gap(plan::CallKind::AllReduce) && row.gap_s >= 0 ? "α(g),β" : "α,β";
      table += fmt::format("  {:<7} {:<9} {:<7} {:<38} {:>9.3f} ms {:>9.3f} ms {:>+7.1f}% {:>6} {:>8} {:>7.3f} ms {:>7.3f} ms {:>5}\n",
                           m.rate, layout, priced, row.what,
                           row.predicted_s * 1e3, row.measured_s * 1e3, 100 * row.error(),
                           row.bound > 0 ? fmt::format("{}{:.0f}%", row.within() ? "≤" : "> ", 100 * row.bound) : "-",
                           row.gap_s >= 0 ? fmt::format("{:.0f}", row.gap_s * 1e6) : "-",
                           rows50[i].predicted_s * 1e3, rows200[i].predicted_s * 1e3,
                           m.load >= 0 ? fmt::format("{:.2f}", m.load) : "-");
      jr["rows"].push_back({{"what", row.what}, {"predicted_s", row.predicted_s}, {"measured_s", row.measured_s}, {"gap_s", row.gap_s},
                            {"error", row.error()}, {"bound", row.bound}, {"within", row.within()},
                            {"predicted_s_added_50us", rows50[i].predicted_s}, {"predicted_s_added_200us", rows200[i].predicted_s}});
    }
    j["runs"].push_back(jr);
  }
  if (j["runs"].empty()) fail(o.measured + ": no run over a shaped link (rates NNgbit) for " + o.model + "; or give --link-gbps");
  j["within_bounds"] = ok;
  table += ok ? "  all within the error bars\n" : "  OUTSIDE the error bars\n";
  table += "  priced α(g),β: per call kind, Σ α(gap) + bytes × β of bench_link's fits at that rate, α at the compute before each call\n"
           "  (gap us: the run's own compute per step ÷ its collectives; PP: a stage's work); α,β: a fits file without the gap sweep\n"
           "  (version 1), α at bench_link's own gap; rate: messages × latency + bytes ÷ rate\n"
           "  +50us/msg, +200us/msg: the same prediction with that much latency added to every message\n";
  table += "  (load: the 1-minute load average during the run; above ~1.5 on this 2-core machine the figures measure the other processes)\n";
  std::printf("%s", o.json ? (j.dump(2) + "\n").c_str() : table.c_str());
}

}  // namespace tern::cli
