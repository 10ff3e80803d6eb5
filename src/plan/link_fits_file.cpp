#include "plan/link_fits_file.h"

#include <fmt/format.h>

#include <cmath>
#include <map>
#include <sstream>

#include "plan/comm_check.h"

namespace tern::plan {

namespace {

Result<CallKind> kind_of(const std::string& name) {
  for (int k = 0; k < kCallKinds; ++k) {
    if (name == call_kind_name(CallKind(k))) return CallKind(k);
  }
  return Status::error("unknown call kind '" + name + "' (all_reduce, all_gather, gather, broadcast, p2p)");
}

double num(const nlohmann::json& j, const char* k, double dflt) { return j.contains(k) && j[k].is_number() ? j[k].get<double>() : dflt; }

}  // namespace

nlohmann::ordered_json link_fit_row(CallKind k, const RangedFit& f, double gap_us) {
  nlohmann::ordered_json j;
  j["fit"] = call_kind_name(k);
  j["min_bytes"] = f.min_bytes;
  j["max_bytes"] = f.max_bytes;
  j["alpha_us"] = f.fit.alpha_s * 1e6;
  j["beta_ns_per_byte"] = f.fit.beta_s_per_byte * 1e9;
  j["gbps"] = f.fit.beta_s_per_byte > 0 ? 8e-9 / f.fit.beta_s_per_byte : 0.0;
  j["max_rel_residual"] = f.fit.max_rel_residual;
  j["gap_us"] = gap_us;
  return j;
}

nlohmann::ordered_json gap_fit_row(CallKind k, const RangedGapFit& f, const std::string& gap_work) {
  nlohmann::ordered_json j;
  j["alpha_gap"] = call_kind_name(k);
  j["min_bytes"] = f.min_bytes;
  j["max_bytes"] = f.max_bytes;
  j["beta_ns_per_byte"] = f.beta_s_per_byte * 1e9;
  j["alpha0_us"] = f.alpha.alpha0_s * 1e6;
  j["wake_us"] = f.alpha.wake_s * 1e6;
  j["tau_us"] = f.alpha.tau_s * 1e6;
  j["max_rel_residual"] = f.alpha.max_rel_residual;
  j["points"] = nlohmann::ordered_json::array();
  for (const GapPoint& p : f.alpha.points) j["points"].push_back({p.gap_s * 1e6, p.alpha_s * 1e6});
  j["gap_work"] = gap_work;
  return j;
}

Result<bool> read_link_fit_row(const nlohmann::json& row, LinkFits& into) {
  if (!row.is_object()) return false;
  const bool line = row.contains("fit"), gap = row.contains("alpha_gap");
  if (!line && !gap) return false;
  const nlohmann::json& name = row[line ? "fit" : "alpha_gap"];
  if (!name.is_string()) return Status::error("a fit row whose kind is not a string");
  auto kind = kind_of(name.get<std::string>());
  if (!kind.is_ok()) return kind.status();
  if (line) {
    if (!row.contains("alpha_us") || !row["alpha_us"].is_number() || !row.contains("beta_ns_per_byte") ||
        !row["beta_ns_per_byte"].is_number()) {
      return Status::error("a \"fit\" row without alpha_us and beta_ns_per_byte");
    }
    RangedFit f;
    f.min_bytes = num(row, "min_bytes", 0);
    f.max_bytes = num(row, "max_bytes", 1e300);
    f.fit.alpha_s = num(row, "alpha_us", 0) * 1e-6;
    f.fit.beta_s_per_byte = num(row, "beta_ns_per_byte", 0) * 1e-9;
    f.fit.max_rel_residual = num(row, "max_rel_residual", 0);
    into.add(*kind, f);
    return true;
  }
  if (!row.contains("alpha0_us") || !row["alpha0_us"].is_number() || !row.contains("beta_ns_per_byte") ||
      !row["beta_ns_per_byte"].is_number()) {
    return Status::error("an \"alpha_gap\" row without alpha0_us and beta_ns_per_byte");
  }
  RangedGapFit g;
  g.min_bytes = num(row, "min_bytes", 0);
  g.max_bytes = num(row, "max_bytes", 1e300);
  g.beta_s_per_byte = num(row, "beta_ns_per_byte", 0) * 1e-9;
  g.alpha.alpha0_s = num(row, "alpha0_us", 0) * 1e-6;
  g.alpha.wake_s = num(row, "wake_us", 0) * 1e-6;
  g.alpha.tau_s = num(row, "tau_us", 0) * 1e-6;
  g.alpha.max_rel_residual = num(row, "max_rel_residual", 0);
  if (row.contains("points") && row["points"].is_array()) {
    for (const auto& p : row["points"]) {
      if (p.is_array() && p.size() == 2 && p[0].is_number() && p[1].is_number()) {
        g.alpha.points.push_back({p[0].get<double>() * 1e-6, p[1].get<double>() * 1e-6});
      }
    }
  }
  if (g.alpha.points.empty()) g.alpha.points.push_back({0, g.alpha.alpha0_s});  // a hand-written row: α₀ and w only
  into.add(*kind, g);
  return true;
}

Result<LinkFits> parse_link_fits(const std::string& text, const std::string& source, double rate_gbps) {
  LinkFits direct;              // bench_link's own output
  std::map<std::string, LinkFits> by_rate;  // results.jsonl's link rows (the first of each rate)
  std::istringstream in(text);
  std::string line;
  for (int no = 1; std::getline(in, line); ++no) {
    if (line.empty() || line[0] != '{') continue;
    const nlohmann::json j = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
    if (j.is_discarded() || !j.is_object()) return Status::error(fmt::format("{}:{}: not a JSON object", source, no));
    auto where = [&](const Status& s) { return Status::error(fmt::format("{}:{}: {}", source, no, s.message())); };
    if (j.contains("rows") && j["rows"].is_array() && j.contains("kind") && j["kind"] == "link") {
      const std::string rate = j.contains("rate") && j["rate"].is_string() ? j["rate"].get<std::string>() : "";
      if (by_rate.count(rate)) continue;
      LinkFits f;
      for (const auto& row : j["rows"]) {
        auto r = read_link_fit_row(row, f);
        if (!r.is_ok()) return where(r.status());
      }
      if (!f.empty()) by_rate[rate] = f;
      continue;
    }
    auto r = read_link_fit_row(j, direct);
    if (!r.is_ok()) return where(r.status());
  }
  if (!direct.empty()) return direct;
  if (by_rate.empty()) {
    return Status::error(source + ": no bench_link fits in it (rows with \"fit\": bench_link's output or bench/netns_tp.sh's results.jsonl)");
  }
  std::string rates;
  for (const auto& [rate, f] : by_rate) rates += (rates.empty() ? "" : ", ") + rate;
  if (rate_gbps <= 0) {
    if (by_rate.size() == 1) return by_rate.begin()->second;
    return Status::error(source + ": links at rates " + rates + ": give --link-gbps to pick one");
  }
  for (const auto& [rate, f] : by_rate) {
    auto g = parse_rate_gbps(rate);
    if (g.is_ok() && std::fabs(*g - rate_gbps) <= 1e-9 * rate_gbps) return f;
  }
  return Status::error(fmt::format("{}: no link at {} Gbit/s in it (rates: {})", source, rate_gbps, rates));
}

}  // namespace tern::plan
