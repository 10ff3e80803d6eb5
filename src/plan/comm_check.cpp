#include "plan/comm_check.h"

#include "plan/link_fits_file.h"

#include <fmt/format.h>

#include <cmath>
#include <map>
#include <nlohmann/json.hpp>
#include <regex>
#include <sstream>

namespace tern::plan {

Result<double> parse_rate_gbps(const std::string& rate) {
  static const std::regex re(R"(^([0-9]+(\.[0-9]+)?)(gbit|mbit|kbit)$)");
  std::smatch m;
  if (!std::regex_match(rate, m, re)) {
    return Status::error("rate '" + rate + "' is no shaped link (give NNgbit, NNmbit or NNkbit)");
  }
  const double n = std::stod(m[1].str());
  const std::string unit = m[3].str();
  return unit == "gbit" ? n : unit == "mbit" ? n / 1e3 : n / 1e6;
}

Result<std::vector<CommMeasurement>> parse_comm_measurements(const std::string& text, const std::string& source,
                                                             const std::string& model) {
  std::vector<CommMeasurement> runs;
  std::map<std::string, double> latency_of_rate, burst_of_rate;  // the link rows
  std::map<std::string, LinkFits> fits_of_rate;
  std::istringstream in(text);
  std::string line;
  for (int no = 1; std::getline(in, line); ++no) {
    if (line.empty() || line[0] != '{') continue;  // bench_tp's other output, mpirun's banners
    const nlohmann::json j = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
    if (j.is_discarded() || !j.is_object()) return Status::error(fmt::format("{}:{}: not a JSON object", source, no));
    auto str = [&](const char* k) { return j.contains(k) && j[k].is_string() ? j[k].get<std::string>() : std::string(); };
    auto num = [&](const char* k, double dflt) { return j.contains(k) && j[k].is_number() ? j[k].get<double>() : dflt; };
    if (str("kind") == "link" && j.contains("rows") && j["rows"].is_array()) {
      // A link row measured for one model's decode (its compute between calls) is keyed by rate and
      // model; one without a model serves every model at that rate.
      const std::string key = str("rate") + "|" + str("model");
      if (num("burst_bytes", 0) > 0) burst_of_rate[key] = num("burst_bytes", 0);
      for (const auto& row : j["rows"]) {
        if (row.is_object() && row.contains("latency_us") && row["latency_us"].is_number()) {
          latency_of_rate[key] = row["latency_us"].get<double>();
        }
        auto fit = read_link_fit_row(row, fits_of_rate[key]);
        if (!fit.is_ok()) return Status::error(fmt::format("{}:{}: {}", source, no, fit.status().message()));
      }
      if (fits_of_rate[key].empty()) fits_of_rate.erase(key);
      continue;
    }
    if (!j.contains("decode_tok_s") || !(j.contains("all_reduce_link_s_per_token") || j.contains("comm_critical_s_per_token"))) {
      continue;  // baselines, errors
    }
    const std::string kind = str("kind").empty() ? "decode" : str("kind");
    if (kind != "decode" && kind != "ttft") continue;
    CommMeasurement m;
    m.kind = kind;
    m.prompt_tokens = int64_t(num("prompt_tokens", 0));
    m.prefill_all_reduce_link_s = num("prefill_all_reduce_link_s", 0);
    m.prefill_comm_critical_s = num("prefill_comm_critical_s", 0);
    m.prefill_p2p_link_s = num("prefill_p2p_link_s", 0);
    if (kind == "ttft" && (m.prompt_tokens <= 0 || (m.prefill_all_reduce_link_s <= 0 && m.prefill_comm_critical_s <= 0 &&
                                                    m.prefill_p2p_link_s <= 0))) {
      continue;
    }
    m.rate = str("rate"), m.model = str("model"), m.layout = str("layout");
    if (!model.empty() && !m.model.empty() && m.model != model) continue;
    m.ranks = int(num("ranks", 0));
    m.decode_tok_s = num("decode_tok_s", 0);
    m.all_reduce_link_s_per_token = num("all_reduce_link_s_per_token", 0);
    m.comm_s_per_token = num("comm_s_per_token", 0);
    m.comm_link_s_per_token = num("comm_link_s_per_token", 0);
    m.comm_critical_s_per_token = num("comm_critical_s_per_token", 0);
    m.all_reduce_bytes_per_token = num("all_reduce_bytes_per_token", 0);
    m.ttft_s = num("ttft_s", 0);
    m.prefill_comm_s = num("prefill_comm_s", 0);
    m.stage_work_s_per_token = num("stage_work_s_per_token", 0);
    m.load = num("load", -1);
    if (m.ranks < 2) return Status::error(fmt::format("{}:{}: a run of {} rank(s): nothing crossed a link", source, no, m.ranks));
    runs.push_back(m);
  }
  for (CommMeasurement& m : runs) {
    // This model's link row at the run's rate, else the rate's.
    auto pick = [&](const auto& by_key) {
      auto it = by_key.find(m.rate + "|" + m.model);
      return it != by_key.end() ? it : by_key.find(m.rate + "|");
    };
    if (auto it = pick(latency_of_rate); it != latency_of_rate.end()) m.link_latency_us = it->second;
    if (auto b = pick(burst_of_rate); b != burst_of_rate.end()) m.link_burst_bytes = b->second;
    if (auto f = pick(fits_of_rate); f != fits_of_rate.end()) m.link_fits = f->second;
  }
  if (runs.empty()) {
    return Status::error(source + ": no decode run with all_reduce_link_s_per_token or comm_critical_s_per_token" +
                         (model.empty() ? std::string() : " for model '" + model + "'") +
                         " (bench/netns_tp.sh writes them)");
  }
  return runs;
}

Result<MeasuredLayout> measured_layout(const CommMeasurement& m, int64_t hidden) {
  MeasuredLayout ml;
  static const std::regex re(R"(^(tp|pp)([0-9]+)(-int8)?$)");
  std::smatch g;
  if (m.layout.empty()) {
    ml.layout.tp = m.ranks;
  } else if (std::regex_match(m.layout, g, re)) {
    const int n = std::stoi(g[2].str());
    (g[1].str() == "tp" ? ml.layout.tp : ml.layout.pp) = n;
    if (g[3].matched) ml.tp_bytes_per_element = 1.0 + 4.0 / double(hidden);  // int8 + an f32 scale per row
  } else {
    return Status::error("layout '" + m.layout + "': expected tpN, ppN or tpN-int8");
  }
  if (ml.layout.devices() != m.ranks) {
    return Status::error(fmt::format("layout '{}' needs {} ranks but the run had {}", m.layout, ml.layout.devices(), m.ranks));
  }
  return ml;
}

bool CommCheckRow::within() const { return bound == 0 || std::fabs(error()) <= bound; }

double measured_compute_s(const CommMeasurement& m, const MeasuredLayout& ml) {
  if (m.kind == "ttft") {
    // The prompt: its time less rank 0's time in calls (TP); under PP the whole prompt's time, which
    // at batch 1 is the stages' work one after another plus the link (a 1% error on the gap).
    if (m.ttft_s <= 0) return 0;
    return ml.layout.pp > 1 ? m.ttft_s : std::max(0.0, m.ttft_s - m.prefill_comm_s);
  }
  if (ml.layout.pp > 1) return m.stage_work_s_per_token;  // Σ over the stages of their own work
  if (m.decode_tok_s <= 0) return 0;
  return std::max(0.0, 1.0 / m.decode_tok_s - m.comm_s_per_token);  // rank 0's step outside its calls
}

std::vector<CommCheckRow> check_comm(const ModelShape& s, const CommMeasurement& m, const MeasuredLayout& ml,
                                     const Link& link) {
  std::vector<CommCheckRow> rows;
  const bool tp = ml.layout.tp > 1;
  const double compute = measured_compute_s(m, ml);
  // The gap a row reports: the TP collectives' (TP), a stage's (PP).
  auto gap_of = [](const LayoutComm& c) {
    for (const CommCost* cost : {&c.tp, &c.pp}) {
      if (!cost->groups.empty()) return cost->groups.front().gap_s;
    }
    return -1.0;
  };
  if (m.kind == "ttft") {
    // The prompt is one step of prompt_tokens rows (one chunk; PP with one micro-batch), its one
    // output row's logits after it.
    LayoutComm p = decode_step_comm(s, ml.layout, m.prompt_tokens, 4.0, ml.tp_bytes_per_element);
    set_compute_gaps(p, ml.layout, compute);
    if (tp && m.prefill_all_reduce_link_s > 0) {
      rows.push_back({fmt::format("all-reduces of the {}-token prompt (link)", m.prompt_tokens), p.tp.seconds(link),
                      m.prefill_all_reduce_link_s, 0.20, gap_of(p)});
    }
    if (!tp && (m.prefill_p2p_link_s > 0 || m.prefill_comm_critical_s > 0)) {
      LayoutComm one = decode_step_comm(s, ml.layout, 1, 4.0, ml.tp_bytes_per_element);
      set_compute_gaps(one, ml.layout, compute);
      const double predicted = p.pp.seconds(link) + p.ep.seconds(link) + one.protocol.seconds(link);
      if (m.prefill_p2p_link_s > 0) {
        // bench_pp's direct measure: each send from its start on the sender to the end of the
        // receiver's receive (the receiver was already waiting), summed with the step's broadcasts.
        rows.push_back({fmt::format("{}-token prompt: sends, start to delivery", m.prompt_tokens), predicted,
                        m.prefill_p2p_link_s, 0.20, gap_of(p)});
      } else {
        // The older measure, the step less the stages' work: a difference of two ~seconds-long
        // windows, within its own noise at a prompt's size (report only).
        rows.push_back({fmt::format("{}-token prompt: step − stages' work", m.prompt_tokens), predicted,
                        m.prefill_comm_critical_s, 0, gap_of(p)});
      }
    }
    return rows;
  }
  LayoutComm c = decode_step_comm(s, ml.layout, 1, 4.0, ml.tp_bytes_per_element);
  set_compute_gaps(c, ml.layout, compute);
  const double gap = gap_of(c);
  if (tp) {
    rows.push_back({"all-reduces per token (link)", c.tp.seconds(link), m.all_reduce_link_s_per_token, 0.20, gap});
    if (m.comm_link_s_per_token > 0) {
      rows.push_back({"all collectives per token (link)", c.seconds(link), m.comm_link_s_per_token, 0.20, gap});
    }
    rows.push_back({"rank 0's time in calls per token", c.seconds(link), m.comm_s_per_token, 0, gap});
  } else if (m.comm_critical_s_per_token > 0) {
    rows.push_back({"per token: step − stages' work", c.seconds(link), m.comm_critical_s_per_token, 0.20, gap});
    rows.push_back({"rank 0's time in calls per token", c.seconds(link), m.comm_s_per_token, 0, gap});
  } else {
    rows.push_back({"all communication per token (rank 0)", c.seconds(link), m.comm_s_per_token, 0.20, gap});
  }
  return rows;
}

}  // namespace tern::plan
