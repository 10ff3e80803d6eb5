// Table, JSON and SVG views of tern bench serve's results: see bench_serve_plot.h.
#include "bench_serve_plot.h"

#include <fmt/format.h>

#include <algorithm>

namespace tern::cli {

nlohmann::json level_json(const LevelResult& r) {
  auto pct = [](const std::vector<double>& v) {
    return nlohmann::json{{"p50", v.size() > 0 ? v[0] : 0}, {"p90", v.size() > 1 ? v[1] : 0}, {"p99", v.size() > 2 ? v[2] : 0}};
  };
  nlohmann::json j = {{"concurrency", r.concurrency},
                      {"completed", r.completed},
                      {"failed", r.failed},
                      {"wall_s", r.wall_s},
                      {"output_tokens", r.output_tokens},
                      {"output_tokens_per_s", r.output_tok_per_s},
                      {"requests_per_s", r.requests_per_s},
                      {"ttft_ms", pct(r.ttft_ms)},
                      {"itl_ms", pct(r.itl_ms)},
                      {"e2e_ms", pct(r.e2e_ms)}};
  if (!r.first_error.empty()) j["first_error"] = r.first_error;
  if (r.has_goodput) {
    j["good"] = r.good;
    j["refused"] = r.refused;
    j["goodput_requests_per_s"] = r.goodput_per_s;
  }
  return j;
}

std::string level_table(const std::vector<LevelResult>& results) {
  std::string s = fmt::format("{:>5} {:>6} {:>5} {:>9} {:>7} | {:>27} | {:>24} | {:>27}\n", "conc", "done", "fail",
                              "tok/s", "req/s", "TTFT ms p50/p90/p99", "ITL ms p50/p90/p99", "e2e ms p50/p90/p99");
  for (const auto& r : results) {
    auto three = [](const std::vector<double>& v, int w) {
      return fmt::format("{:>{}}", fmt::format("{:.1f}/{:.1f}/{:.1f}", v[0], v[1], v[2]), w);
    };
    s += fmt::format("{:>5} {:>6} {:>5} {:>9.1f} {:>7.2f} | {} | {} | {}\n", r.concurrency, r.completed, r.failed,
                     r.output_tok_per_s, r.requests_per_s, three(r.ttft_ms, 27), three(r.itl_ms, 24),
                     three(r.e2e_ms, 27));
    if (r.has_goodput) {
      s += fmt::format("      goodput: {} of {} requests met both targets ({:.2f}/s); {} refused (429)\n", r.good,
                       r.completed + r.failed, r.goodput_per_s, r.refused);
    }
  }
  return s;
}

namespace {

struct Series {
  const char* name;
  const char* color;
  std::vector<double> y;
};

// One panel: lines through (throughput, latency) points, labelled with the concurrency.
std::string panel(double x0, double y0, double w, double h, const std::vector<LevelResult>& rs,
                  const std::vector<Series>& series, const std::string& title) {
  double xmax = 1, ymax = 1;
  for (const auto& r : rs) xmax = std::max(xmax, r.output_tok_per_s);
  for (const auto& s : series) {
    for (double v : s.y) ymax = std::max(ymax, v);
  }
  xmax *= 1.1;
  ymax *= 1.15;
  auto px = [&](double x) { return x0 + 50 + (w - 70) * x / xmax; };
  auto py = [&](double y) { return y0 + h - 40 - (h - 70) * y / ymax; };
  std::string s = fmt::format(R"(<text x="{:.0f}" y="{:.0f}" font-size="14" font-weight="bold">{}</text>)" "\n",
                              x0 + 50, y0 + 18, title);
  s += fmt::format(R"(<line x1="{0:.1f}" y1="{1:.1f}" x2="{2:.1f}" y2="{1:.1f}" stroke="black"/>)" "\n", px(0), py(0), px(xmax));
  s += fmt::format(R"(<line x1="{0:.1f}" y1="{1:.1f}" x2="{0:.1f}" y2="{2:.1f}" stroke="black"/>)" "\n", px(0), py(0), py(ymax));
  for (int t = 0; t <= 4; ++t) {
    const double xv = xmax * t / 4, yv = ymax * t / 4;
    s += fmt::format(R"(<text x="{:.1f}" y="{:.1f}" font-size="10" text-anchor="middle">{:.0f}</text>)" "\n", px(xv),
                     py(0) + 14, xv);
    s += fmt::format(R"(<text x="{:.1f}" y="{:.1f}" font-size="10" text-anchor="end">{:.0f}</text>)" "\n", px(0) - 4,
                     py(yv) + 3, yv);
  }
  s += fmt::format(R"(<text x="{:.1f}" y="{:.1f}" font-size="11" text-anchor="middle">output tokens/s</text>)" "\n",
                   x0 + w / 2, y0 + h - 8);
  s += fmt::format(R"(<text x="{:.1f}" y="{:.1f}" font-size="11">ms</text>)" "\n", x0 + 8, y0 + 40);
  int legend = 0;
  for (const auto& se : series) {
    std::string pts;
    for (size_t i = 0; i < rs.size(); ++i) pts += fmt::format("{:.1f},{:.1f} ", px(rs[i].output_tok_per_s), py(se.y[i]));
    s += fmt::format(R"(<polyline points="{}" fill="none" stroke="{}" stroke-width="2"/>)" "\n", pts, se.color);
    for (size_t i = 0; i < rs.size(); ++i) {
      s += fmt::format(R"(<circle cx="{:.1f}" cy="{:.1f}" r="3" fill="{}"/>)" "\n", px(rs[i].output_tok_per_s),
                       py(se.y[i]), se.color);
      s += fmt::format(R"(<text x="{:.1f}" y="{:.1f}" font-size="9">c={}</text>)" "\n", px(rs[i].output_tok_per_s) + 4,
                       py(se.y[i]) - 4, rs[i].concurrency);
    }
    s += fmt::format(R"(<text x="{:.1f}" y="{:.1f}" font-size="11" fill="{}">{}</text>)" "\n", x0 + 70,
                     y0 + 40 + 14 * legend++, se.color, se.name);
  }
  return s;
}

}  // namespace

std::string latency_throughput_svg(const std::vector<LevelResult>& rs, const std::string& model, int64_t prompt_tokens,
                                   int64_t output_tokens) {
  auto col = [&](const std::vector<double> LevelResult::*m, size_t i) {
    std::vector<double> v;
    for (const auto& r : rs) v.push_back((r.*m).size() > i ? (r.*m)[i] : 0);
    return v;
  };
  std::string s = R"(<svg xmlns="http://www.w3.org/2000/svg" width="960" height="420" font-family="sans-serif">)" "\n";
  s += R"(<rect width="960" height="420" fill="white"/>)" "\n";
  s += fmt::format(R"(<text x="480" y="20" font-size="14" text-anchor="middle">{} — prompt {} / output {} tokens, latency vs throughput across concurrency</text>)" "\n",
                   model, prompt_tokens, output_tokens);
  s += panel(0, 30, 480, 390, rs,
             {{"TTFT p50", "#1f77b4", col(&LevelResult::ttft_ms, 0)},
              {"TTFT p99", "#aec7e8", col(&LevelResult::ttft_ms, 2)},
              {"e2e p50", "#d62728", col(&LevelResult::e2e_ms, 0)},
              {"e2e p99", "#ff9896", col(&LevelResult::e2e_ms, 2)}},
             "time to first token, end to end");
  s += panel(480, 30, 480, 390, rs,
             {{"ITL p50", "#2ca02c", col(&LevelResult::itl_ms, 0)}, {"ITL p99", "#98df8a", col(&LevelResult::itl_ms, 2)}},
             "inter-token latency");
  s += "</svg>\n";
  return s;
}

}  // namespace tern::cli
